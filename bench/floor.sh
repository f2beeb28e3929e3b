#!/usr/bin/env bash
# A 1 GiB file from the page cache: ferry's server CPU per GiB against the floor — a bare
# sendfile(2) loop serving the same file (bench/floor.py) — and against nginx.
#
#   bench/floor.sh [--rounds N] [--downloads D] [--size BYTES] [--loopback] FERRY_BIN
#
# Every round runs ferry ([io] send_path = "sendfile", its default 2 MiB chunk, access log
# off), the bare loop (2 MiB per sendfile call, nothing else: no HTTP parsing worth the name,
# no metrics, no logging) and nginx (sendfile on, tcp_nopush on, sendfile_max_chunk 2m), one
# at a time, each serving D downloads of the file to one client (floor.py get: a new
# connection per download, the body discarded with recv(MSG_TRUNC), so the client copies
# nothing). The client runs in a network namespace (ferryfloor) behind a veth pair with
# threaded NAPI, TSO off and GRO on, and the servers use cubic toward it (bench/run.sh's
# --netns --netns-cc cubic setup, on 10.204.0.0/30): on loopback the receiver's TCP work runs
# in the sender's softirq and is charged to the server by an amount that varies with
# scheduling (bench/RESULTS.md, top); --loopback measures that way anyway. Server CPU is the sum of the server's threads' run time from
# /proc/PID/task/*/schedstat (nanoseconds; utime+stime ticks are too coarse for ~0.1 s per GiB)
# around the downloads. The medians over the rounds and the ratios are printed at the end.
set -euo pipefail

ROUNDS=5
DOWNLOADS=3
SIZE=$((1 << 30))
LOOPBACK=0
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --downloads) DOWNLOADS=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --loopback) LOOPBACK=1 ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($# == 1)) || { echo "usage: bench/floor.sh [--rounds N] [--downloads D] [--size BYTES] [--loopback] FERRY_BIN" >&2; exit 64; }
FERRY=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/tools.sh
source "$HERE/tools.sh"
bench_tools floor nginx:nginx-light curl:curl python3:python3 ip:iproute2 ethtool:ethtool

NS=ferryfloor
ADDR=127.0.0.1
CLIENT=()
WORK=$(mktemp -d /tmp/ferry-floor.XXXXXX)
SRV=
cleanup() {
    [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
    if ((!LOOPBACK)) && ip netns list | grep -qw "$NS"; then ip netns del "$NS"; fi
}
trap cleanup EXIT
if ((!LOOPBACK)); then
    ! ip netns list | grep -qw "$NS" || { echo "floor: namespace $NS exists (another run? ip netns del $NS)" >&2; exit 1; }
    ip netns add "$NS"
    ip link add ff0 type veth peer name ff1
    ip link set ff1 netns "$NS"
    ip addr add 10.204.0.1/30 dev ff0
    ip link set ff0 mtu 65535 up
    ip -n "$NS" addr add 10.204.0.2/30 dev ff1
    ip -n "$NS" link set lo up
    ip -n "$NS" link set ff1 mtu 65535 up
    ip route change 10.204.0.0/30 dev ff0 proto kernel scope link src 10.204.0.1 congctl cubic
    ethtool -K ff0 tso off gro on >/dev/null
    ip netns exec "$NS" ethtool -K ff1 tso off gro on >/dev/null
    echo 1 >/sys/class/net/ff0/threaded
    ip netns exec "$NS" sh -c 'echo 1 > /sys/class/net/ff1/threaded'
    for _ in $(seq 50); do [[ $(cat /sys/class/net/ff0/carrier) == 1 ]] && break; sleep 0.1; done
    ADDR=10.204.0.1
    CLIENT=(ip netns exec "$NS")
fi
mkdir -p "$WORK/files" "$WORK/tmp"
head -c "$SIZE" /dev/urandom >"$WORK/files/big.bin"
cat "$WORK/files/big.bin" >/dev/null
chmod 755 "$WORK"
chmod -R a+rX "$WORK/files"

start() { # start NAME: sets SRV, PORT and PIDS
    local name=$1
    case $name in
        nginx)
            PORT=$(free_port)
            nginx_conf "$WORK" "sendfile_max_chunk 2m;" \
                "server { listen $ADDR:$PORT; location /static/ { alias $WORK/files/; } }"
            nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
            SRV=$!
            ;;
        ferry)
            PORT=$(free_port)
            cat >"$WORK/ferry.toml" <<CONF
[server]
listen = ["$ADDR:$PORT"]
access_log = "off"
[admin]
listen = "127.0.0.1:$(free_port)"
[io]
send_path = "sendfile"
[[location]]
prefix = "/static/"
root = "$WORK/files"
CONF
            "$FERRY" serve --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
            SRV=$!
            ;;
        bare)
            coproc BARE { exec python3 "$HERE/floor.py" serve "$ADDR" "$WORK/files/big.bin" $((2 << 20)); }
            SRV=$BARE_PID
            read -r PORT <&"${BARE[0]}"
            ;;
    esac
    if [[ $name != bare ]]; then
        for _ in $(seq 100); do
            curl -sf -o /dev/null -r 0-0 "http://$ADDR:$PORT/static/big.bin" && break
            sleep 0.1
        done
    fi
    PIDS="$SRV $(pgrep -P "$SRV" | tr '\n' ' ' || true)"
}

cpu_ns() { # run time of every thread of $PIDS, in ns
    local total=0 pid f
    for pid in $PIDS; do
        for f in /proc/"$pid"/task/*/schedstat; do
            read -r ns _ <"$f" 2>/dev/null || continue
            total=$((total + ns))
        done
    done
    echo "$total"
}

declare -A RES
NAMES=(ferry bare nginx)
echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) $(nproc) cores, kernel $(uname -r)"
echo "$DOWNLOADS downloads of $SIZE bytes per server per round, $ROUNDS rounds, $( ((LOOPBACK)) && echo "loopback" || echo "client in netns $NS over veth (threaded NAPI, cubic)"); server CPU s/GiB"
for round in $(seq "$ROUNDS"); do
    line="round $round:"
    for name in "${NAMES[@]}"; do
        start "$name"
        "${CLIENT[@]}" python3 "$HERE/floor.py" get "$ADDR" "$PORT" /static/big.bin 1 # warm-up
        c0=$(cpu_ns)
        "${CLIENT[@]}" python3 "$HERE/floor.py" get "$ADDR" "$PORT" /static/big.bin "$DOWNLOADS"
        c1=$(cpu_ns)
        kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
        v=$(awk -v c=$((c1 - c0)) -v n="$DOWNLOADS" -v s="$SIZE" 'BEGIN { printf "%.4f", c / 1e9 / (n * s / 1073741824) }')
        RES[$name]+="$v "
        line+=" $name $v"
    done
    echo "$line"
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { printf "%.4f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
f=$(median <<<"${RES[ferry]}"); b=$(median <<<"${RES[bare]}"); n=$(median <<<"${RES[nginx]}")
echo "medians: ferry $f, bare sendfile loop $b, nginx $n s/GiB"
awk -v f="$f" -v b="$b" -v n="$n" 'BEGIN { printf "ferry / bare loop %.3f, ferry / nginx %.3f\n", f / b, f / n }'
