#!/usr/bin/env bash
# Interleaved 4 KiB readings of ferry builds against nginx, for the small-file CPU gap.
#
#   bench/small_ab.sh [--rounds N] [--secs S] [--open-file-cache] FERRY_BIN...
#
# Each round runs every given ferry binary ([io] send_path = "sendfile", access_log = "off",
# one /static/ location) and then nginx (the static config of bench/run.sh: 2 workers,
# sendfile on, tcp_nopush on, access_log off) on the same 4 KiB file, one server at a time:
# a 1 s warm-up, then `wrk -t2 -c50 -d${S}s` on loopback. Server CPU is utime+stime of the
# server's processes (all threads) from /proc around the measured run. Interleaving the
# servers round by round spreads a busy machine's disturbance over all of them; the medians
# at the end are what to quote. --open-file-cache turns on ferry's io.open_file_cache = 1000
# and nginx's open_file_cache max=1000 (both off by default). Needs wrk, nginx, curl, python3 (for free ports).
set -euo pipefail

ROUNDS=5
SECS=5
OFC=0
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --open-file-cache) OFC=1 ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "usage: bench/small_ab.sh [--rounds N] [--secs S] FERRY_BIN..." >&2; exit 64; }
PATH=$PATH:/usr/sbin:/sbin
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null || { echo "small_ab: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/ferry-small-ab.XXXXXX)
SRV=
cleanup() {
    [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/files" "$WORK/tmp"
head -c 4096 /dev/urandom >"$WORK/files/f4k.bin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # start NAME BIN PORT: sets SRV and PIDS
    local name=$1 bin=$2 port=$3
    if [[ $name == nginx ]]; then
        cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    $( ((OFC)) && echo "open_file_cache max=1000 inactive=20s;" )
    server { listen 127.0.0.1:$port; location /static/ { alias $WORK/files/; } }
}
EOF
        nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
    else
        cat >"$WORK/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
access_log = "off"
[admin]
listen = "127.0.0.1:$(free_port)"
[io]
send_path = "sendfile"
$( ((OFC)) && echo "open_file_cache = 1000" )
[[location]]
prefix = "/static/"
root = "$WORK/files"
EOF
        "$bin" serve --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
    fi
    SRV=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/static/f4k.bin" && break
        sleep 0.1
    done
    PIDS="$SRV $(pgrep -P "$SRV" | tr '\n' ' ' || true)"
}

declare -A RESULTS
NAMES=()
for bin in "$@"; do NAMES+=("$bin"); done
NAMES+=(nginx)
printf '%-40s %10s %12s %10s %10s\n' server req/s "CPU µs/req" user sys
for _ in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        port=$(free_port)
        start "$([[ $name == nginx ]] && echo nginx || echo ferry)" "$name" "$port"
        url=http://127.0.0.1:$port/static/f4k.bin
        wrk -t2 -c50 -d1s "$url" >/dev/null
        u0=0 s0=0 u1=0 s1=0
        for pid in $PIDS; do read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat"); u0=$((u0 + u)); s0=$((s0 + s)); done
        out=$(wrk -t2 -c50 -d"${SECS}s" "$url")
        for pid in $PIDS; do read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat"); u1=$((u1 + u)); s1=$((s1 + s)); done
        kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
        req=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
        tck=$(getconf CLK_TCK)
        line=$(awk -v r="$req" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tck" -v rps="$rps" \
            'BEGIN { printf "%10.0f %12.2f %10.2f %10.2f", rps, (u + s) * 1e6 / t / r, u * 1e6 / t / r, s * 1e6 / t / r }')
        printf '%-40s %s\n' "$name" "$line"
        RESULTS[$name]+="$line"$'\n'
    done
done
median() { # median of the numbers on stdin
    sort -g | awk '{ v[NR] = $1 } END { printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "medians over $ROUNDS rounds:"
for name in "${NAMES[@]}"; do
    cols=()
    for col in 1 2 3 4; do
        cols+=("$(printf '%s' "${RESULTS[$name]}" | awk -v c="$col" 'NF { print $c }' | median)")
    done
    printf '%-40s %10.0f %12.2f %10.2f %10.2f\n' "$name" "${cols[@]}"
done
