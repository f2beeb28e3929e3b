#!/usr/bin/env bash
# Interleaved 4 KiB readings of ferry builds against nginx, for the small-file CPU gap.
#
#   bench/small_ab.sh [--rounds N] [--secs S] [--open-file-cache] [--tls] [--browser] FERRY_BIN...
#
# Each round runs every given ferry binary ([io] send_path = "sendfile", access_log = "off",
# one /static/ location) and then nginx (the static config of bench/run.sh: 2 workers,
# sendfile on, tcp_nopush on, access_log off) on the same 4 KiB file, one server at a time:
# a 1 s warm-up, then `wrk -t2 -c50 -d${S}s` on loopback. Server CPU is utime+stime of the
# server's processes (all threads) from /proc around the measured run. Interleaving the
# servers round by round spreads a busy machine's disturbance over all of them; the medians
# at the end are what to quote. --open-file-cache turns on ferry's io.open_file_cache = 1000
# and nginx's open_file_cache max=1000 (both off by default). --tls serves HTTP/1.1 over TLS
# (keep-alive, wrk on https://) with one self-signed RSA-2048 certificate for both servers
# (ferry: [tls] with its defaults, ktls = "auto": userspace rustls on a host without the `tls`
# ULP; nginx: `listen ... ssl`, its default ciphers and session cache off). --browser sends
# the dozen request header fields a browser sends (wrk alone sends Host only), which is what
# per-header costs show in. Needs wrk, nginx, openssl, curl, python3 (for free ports);
# installs the missing ones with apt-get.
set -euo pipefail

ROUNDS=5
SECS=5
OFC=0
TLS=0
WRK_HEADERS=()
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --open-file-cache) OFC=1 ;;
        --tls) TLS=1 ;;
        --browser)
            WRK_HEADERS=(
                -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
                -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
                -H "Accept-Language: en-US,en;q=0.5"
                -H "Accept-Encoding: gzip, deflate, br, zstd"
                -H "Referer: https://example.com/index.html"
                -H "Cookie: session=8f3a2b1c9d7e6f5a4b3c2d1e0f9a8b7c; theme=dark"
                -H "Sec-Fetch-Dest: document"
                -H "Sec-Fetch-Mode: navigate"
                -H "Sec-Fetch-Site: same-origin"
                -H "Upgrade-Insecure-Requests: 1"
                -H "Priority: u=0, i"
            )
            ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "usage: bench/small_ab.sh [--rounds N] [--secs S] [--open-file-cache] [--tls] [--browser] FERRY_BIN..." >&2; exit 64; }
# shellcheck source=bench/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
bench_tools small_ab wrk:wrk nginx:nginx-light openssl:openssl curl:curl python3:python3

WORK=$(mktemp -d /tmp/ferry-small-ab.XXXXXX)
SRV=
cleanup() {
    [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/files" "$WORK/tmp"
head -c 4096 /dev/urandom >"$WORK/files/f4k.bin"
chmod 755 "$WORK"
chmod -R a+rX "$WORK/files"
if ((TLS)); then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
        -days 2 -subj /CN=localhost 2>/dev/null
    SCHEME=https
else
    SCHEME=http
fi

start() { # start NAME BIN PORT: sets SRV and PIDS
    local name=$1 bin=$2 port=$3
    if [[ $name == nginx ]]; then
        nginx_conf "$WORK" \
            "keepalive_requests 1000000; $( ((OFC)) && echo "open_file_cache max=1000 inactive=20s;" )" \
            "server {
        listen 127.0.0.1:$port$( ((TLS)) && echo " ssl" );
        $( ((TLS)) && echo "ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;" )
        location /static/ { alias $WORK/files/; }
    }"
        nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
    else
        cat >"$WORK/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$( ((TLS)) && free_port || echo "$port")"]
access_log = "off"
[admin]
listen = "127.0.0.1:$(free_port)"
[io]
send_path = "sendfile"
$( ((OFC)) && echo "open_file_cache = 1000" )
$( ((TLS)) && printf '[tls]\nlisten = ["127.0.0.1:%s"]\ncert = "%s"\nkey = "%s"\n' "$port" "$WORK/cert.pem" "$WORK/key.pem" )
[[location]]
prefix = "/static/"
root = "$WORK/files"
EOF
        "$bin" serve --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
    fi
    SRV=$!
    for _ in $(seq 100); do
        curl -skf -o /dev/null "$SCHEME://127.0.0.1:$port/static/f4k.bin" && break
        sleep 0.1
    done
    PIDS="$SRV $(pgrep -P "$SRV" | tr '\n' ' ' || true)"
}

declare -A RESULTS
NAMES=()
for bin in "$@"; do NAMES+=("$bin"); done
NAMES+=(nginx)
echo "$(date -u '+%Y-%m-%d %H:%M UTC') $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) $(nproc) cores, kernel $(uname -r); $SCHEME$( ((OFC)) && echo ", open-file caches on")$( ((${#WRK_HEADERS[@]})) && echo ", browser request headers")"
printf '%-40s %10s %12s %10s %10s\n' server req/s "CPU µs/req" user sys
for _ in $(seq "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        port=$(free_port)
        start "$([[ $name == nginx ]] && echo nginx || echo ferry)" "$name" "$port"
        url=$SCHEME://127.0.0.1:$port/static/f4k.bin
        wrk -t2 -c50 -d1s "${WRK_HEADERS[@]}" "$url" >/dev/null
        u0=0 s0=0 u1=0 s1=0
        for pid in $PIDS; do read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat"); u0=$((u0 + u)); s0=$((s0 + s)); done
        out=$(wrk -t2 -c50 -d"${SECS}s" "${WRK_HEADERS[@]}" "$url")
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
