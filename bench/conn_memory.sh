#!/usr/bin/env bash
# Resident memory per idle keep-alive connection: ferry builds against nginx, plaintext, TLS and
# HTTP/2 (over TLS).
#
#   bench/conn_memory.sh [--rounds N] [--conns N] FERRY_BIN...
#
# Each round starts, one at a time, every given ferry binary and then nginx (2 workers,
# sendfile on, access_log off), once plaintext, once TLS and once HTTP/2 over TLS (ALPN h2,
# nginx `listen ... ssl http2`; one stream per connection; the same self-signed P-256
# certificate for both; TLS 1.3; this host has no `tls` ULP, so both encrypt in user space),
# serving the same 4 KiB file on 127.0.0.1. bench/conn_memory.py then opens N (default 5000)
# keep-alive connections, each with one GET of that file read in full, holds them all idle and
# reads the server's resident memory (VmRSS summed over its processes: nginx master and
# workers, ferry's one process) before and while they are held; then it closes them all,
# waits until the server has closed its side too, and reads VmRSS again.
# Columns: KiB per connection = (held - before) / N; "after close" = RSS once all are closed;
# "kept" = after close - before (memory not given back). Medians over the rounds at the end.
# Needs nginx, openssl, curl, python3.
set -euo pipefail

ROUNDS=2
CONNS=5000
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "usage: bench/conn_memory.sh [--rounds N] [--conns N] FERRY_BIN..." >&2; exit 64; }
# shellcheck source=bench/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
bench_tools conn_memory nginx:nginx-light openssl:openssl curl:curl python3:python3
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The client and every server hold one descriptor per connection, plus their own.
NOFILE=$((CONNS * 2 + 1024))
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= CONNS + 256)) || { echo "conn_memory: ulimit -n $(ulimit -n) is too low for $CONNS connections" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ferry-conn-memory.XXXXXX)
SRV=
cleanup() {
    if [[ -n $SRV ]]; then
        kill -TERM "$SRV" 2>/dev/null || true
        wait "$SRV" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/files" "$WORK/tmp"
head -c 4096 /dev/urandom >"$WORK/files/f4k.bin"
# nginx workers run as nobody
chmod 755 "$WORK" "$WORK/files"
chmod 644 "$WORK/files/f4k.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >"$WORK/openssl.log" 2>&1 ||
    { cat "$WORK/openssl.log" >&2; exit 1; }

start() { # start NAME BIN MODE PORT: sets SRV and PIDS
    local name=$1 bin=$2 mode=$3 port=$4 scheme=http
    [[ $mode == plain ]] || scheme=https
    if [[ $name == nginx ]]; then
        local listen="listen 127.0.0.1:$port;"
        local http2=""
        if [[ $mode == h2 ]]; then http2=" http2"; fi
        [[ $mode == plain ]] || listen="listen 127.0.0.1:$port ssl$http2;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.3;"
        cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections $((CONNS + 1024)); }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    server { $listen location /static/ { alias $WORK/files/; } }
}
EOF
        nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
    else
        local plain_port=$port tls=""
        if [[ $mode != plain ]]; then
            plain_port=$(free_port)
            tls="[tls]
listen = [\"127.0.0.1:$port\"]
cert = \"$WORK/cert.pem\"
key = \"$WORK/key.pem\"
ktls = \"auto\""
        fi
        cat >"$WORK/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$plain_port"]
access_log = "off"
keepalive_timeout = "300s"
max_connections = $((CONNS + 1024))
[admin]
listen = "127.0.0.1:$(free_port)"
$tls
[[location]]
prefix = "/static/"
root = "$WORK/files"
EOF
        "$bin" serve --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
    fi
    SRV=$!
    local i
    for i in $(seq 100); do
        curl -skf -o /dev/null "$scheme://127.0.0.1:$port/static/f4k.bin" && break
        ((i < 100)) || { tail "$WORK"/*.log >&2; echo "conn_memory: $name ($mode) did not start" >&2; exit 1; }
        sleep 0.1
    done
    PIDS="$SRV $(pgrep -P "$SRV" | tr '\n' ' ' || true)"
}

declare -A RESULTS
NAMES=()
for bin in "$@"; do NAMES+=("$bin"); done
NAMES+=(nginx)
echo "$CONNS idle keep-alive connections, one 4 KiB GET each; RSS in KiB"
printf '%-34s %-5s %10s %10s %10s %12s %10s\n' server mode before held "KiB/conn" "after close" kept
for _ in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        for mode in plain tls h2; do
            port=$(free_port)
            start "$([[ $name == nginx ]] && echo nginx || echo ferry)" "$name" "$mode" "$port"
            tls_flag=()
            [[ $mode == plain ]] || tls_flag=("--$mode")
            # shellcheck disable=SC2086 # PIDS is a list of numbers
            line=$(python3 "$BENCH_DIR/conn_memory.py" --port "$port" --conns "$CONNS" "${tls_flag[@]}" $PIDS)
            kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
            printf '%-34s %-5s %s\n' "$name" "$mode" "$line"
            RESULTS[$name/$mode]+="$line"$'\n'
        done
    done
done
median() { # median of the numbers on stdin
    sort -g | awk '{ v[NR] = $1 } END { printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "medians over $ROUNDS rounds:"
for name in "${NAMES[@]}"; do
    for mode in plain tls h2; do
        cols=()
        for col in 1 2 3 4 5; do
            cols+=("$(printf '%s' "${RESULTS[$name/$mode]}" | awk -v c="$col" 'NF { print $c }' | median)")
        done
        printf '%-34s %-5s %10.0f %10.0f %10.2f %12.0f %10.0f\n' "$name" "$mode" "${cols[@]}"
    done
done
