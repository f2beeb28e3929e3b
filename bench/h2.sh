#!/usr/bin/env bash
# HTTP/2 over TLS, 4 KiB static file: ferry builds against nginx, rounds interleaved.
#
#   bench/h2.sh [--rounds N] [--requests N] [--size BYTES] FERRY_BIN...
#
# Each round runs every given ferry binary ([tls] with a self-signed RSA-2048 certificate,
# ALPN h2, access_log off, io.open_file_cache = 1000 where the build has it, one /static/
# location) and then nginx (2 workers, `listen ... ssl
# http2`, sendfile on, open_file_cache on, access_log off, the same certificate) on the same
# 4 KiB file, one server at a time: a warm-up of 5000 requests, then
# `h2load -n N -c 32 -m 10` (default 60000). Server CPU is utime+stime of the server's
# processes (all threads) from /proc around the measured run. Medians at the end are what to
# quote. --size BYTES (e.g. 1073741824) serves a file of that size instead and measures bulk
# transfer: one connection, one stream at a time (`h2load -n N -c 1 -m 1`, default N = 4, one
# warm-up download), reported as MiB/s and server CPU seconds per GiB. Needs h2load (nghttp2-client), nginx, openssl, curl, python3.
set -euo pipefail

ROUNDS=5
REQUESTS=
SIZE=4096
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --requests) REQUESTS=$2; shift ;;
        --size) SIZE=$2; shift ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "usage: bench/h2.sh [--rounds N] [--requests N] [--size BYTES] FERRY_BIN..." >&2; exit 64; }
[[ $SIZE =~ ^[0-9]+$ ]] || { echo "h2: --size wants a number of bytes" >&2; exit 64; }
if ((SIZE > 1048576)); then BULK=1; REQUESTS=${REQUESTS:-4}; else BULK=0; REQUESTS=${REQUESTS:-60000}; fi
# shellcheck source=bench/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
bench_tools h2 h2load:nghttp2-client nginx:nginx-light openssl:openssl curl:curl python3:python3

WORK=$(mktemp -d /tmp/ferry-h2.XXXXXX)
chmod 755 "$WORK"
SRV=
cleanup() {
    [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/files" "$WORK/tmp"
# Just written, so in the page cache for both servers (and each run's warm-up reads it too).
head -c "$SIZE" /dev/urandom >"$WORK/files/f.bin"
chmod -R a+rX "$WORK/files"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 2 -subj /CN=localhost 2>/dev/null

start() { # start NAME BIN PORT: sets SRV
    local name=$1 bin=$2 port=$3
    if [[ $name == nginx ]]; then
        nginx_conf "$WORK" "keepalive_requests 1000000; open_file_cache max=1000 inactive=20s;" \
            "server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
        location /static/ { alias $WORK/files/; }
    }"
        nginx -c "$WORK/nginx.conf" &
    else
        cat >"$WORK/ferry.toml" <<CONF
[server]
listen = ["127.0.0.1:$(free_port)"]
access_log = "off"
[admin]
listen = "127.0.0.1:$(free_port)"
[io]
open_file_cache = 1000
[tls]
listen = ["127.0.0.1:$port"]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[[location]]
prefix = "/static/"
root = "$WORK/files"
CONF
        # Builds before io.open_file_cache (nginx's is on here) run without it.
        if ! "$bin" check --config "$WORK/ferry.toml" >/dev/null 2>&1; then
            sed -i '/^\[io\]$/d; /^open_file_cache = /d' "$WORK/ferry.toml"
        fi
        "$bin" serve --config "$WORK/ferry.toml" 2>"$WORK/ferry.err" &
    fi
    SRV=$!
    for _ in $(seq 100); do
        curl -skf --http2 -o /dev/null -r 0-0 "https://127.0.0.1:$port/static/f.bin" && return 0
        sleep 0.1
    done
    echo "h2: $name did not start" >&2
    exit 1
}

stop() {
    kill -TERM "$SRV" 2>/dev/null || true
    wait "$SRV" 2>/dev/null || true
    SRV=
}

cpu_ticks() { # the server's processes: the main pid and its children
    local total=0 pid
    for pid in $SRV $(pgrep -P "$SRV" || true); do
        read -r -a f <"/proc/$pid/stat"
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}

measure() { # measure NAME BIN: prints "NAME req/s cpu_us_per_req" (bulk: "NAME MiB/s cpu_s_per_GiB")
    local name=$1 bin=$2 port url load
    port=$(free_port)
    start "$name" "$bin" "$port"
    url=https://127.0.0.1:$port/static/f.bin
    if ((BULK)); then
        load=(-c 1 -m 1)
        h2load -n 1 "${load[@]}" "$url" >/dev/null 2>&1
    else
        load=(-c 32 -m 10)
        h2load -n 5000 "${load[@]}" "$url" >/dev/null 2>&1
    fi
    local c0 c1 out rps ok t0 t1
    c0=$(cpu_ticks)
    t0=$(date +%s.%N)
    out=$(h2load -n "$REQUESTS" "${load[@]}" "$url" 2>&1)
    t1=$(date +%s.%N)
    c1=$(cpu_ticks)
    stop
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
    if [[ $ok != "$REQUESTS" ]]; then
        echo "h2: $name answered $ok of $REQUESTS with 2xx" >&2
        exit 1
    fi
    local hz
    hz=$(getconf CLK_TCK)
    if ((BULK)); then
        python3 -c "b=$REQUESTS*$SIZE; print(f'{\"$name\":40s} {b/2**20/($t1-$t0):10.0f} {($c1-$c0)/$hz/(b/2**30):10.3f}')"
    else
        python3 -c "print(f'{\"$name\":40s} {float(\"$rps\"):10.0f} {($c1-$c0)/$hz*1e6/$REQUESTS:10.2f}')"
    fi
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) $(nproc) cores, kernel $(uname -r)"
if ((BULK)); then
    echo "$SIZE-byte file, $REQUESTS downloads per round over one HTTP/2 connection"
    echo "server                                        MiB/s  CPU s/GiB"
else
    echo "server                                        req/s  CPU µs/req"
fi
RESULTS=$WORK/results
for _ in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        measure "$bin" "$bin" | tee -a "$RESULTS"
    done
    measure nginx nginx | tee -a "$RESULTS"
done
echo "medians over $ROUNDS rounds:"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, cpu = line.split()
    rows.setdefault(name, []).append((float(rps), float(cpu)))
for name, vals in rows.items():
    print(f"{name:40s} {statistics.median(v[0] for v in vals):10.0f} {statistics.median(v[1] for v in vals):10.3f}")
PY
