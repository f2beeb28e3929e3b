#!/usr/bin/env bash
# TLS handshakes per second, ferry against nginx: full and resumed handshakes, RSA and ECDSA.
#
#   bench/handshake.sh [--rounds N] [--secs S] [--clients C] [--tls 1.3|1.2] [--ferry BIN]
#
# Every connection fetches the same 4 KiB file once and closes (no keep-alive), so each is one
# handshake. Three modes, each measured on its own:
#   full     C parallel `openssl s_time -new` (a full handshake every time)
#   resumed  C parallel `openssl s_time -reuse` (each process resumes the session of its first
#            connection; s_time prints `r` for a resumed connection and `*` for a new one)
#   ab       `ab -n 3000 -c 32` (full handshakes; the client of issue 16's table)
# for two certificates made here (RSA 2048 and ECDSA P-256, self-signed, CN=localhost), and
# two servers on the same certificate and file:
#   ferry    [tls] with the certificate, resumption at its defaults (tickets + 20000-session
#            cache, 5 min), ktls = "auto" (this host has no `tls` ULP: userspace TLS), no access log
#   nginx    2 workers, `listen ssl`, `ssl_session_cache shared:SSL:10m; ssl_session_tickets on;`,
#            access_log off, sendfile on
# Each round runs every (certificate, server) pair, the server order reversed every other round.
# Server CPU is utime+stime of the server's processes (ferry: all threads; nginx: master and
# workers) from /proc/PID/stat around the measured window; per connection = that / connections
# completed. conn/s = connections completed / the window's wall time; the clients share the
# machine's cores with the server, so conn/s is client+server, CPU per connection is the
# server's own and is robust to other load. For ferry the window's handshakes and resumed
# handshakes are read from its metrics; for both, s_time's r/* marks give the resumed share.
# Prints one line per window and medians [min-max] per (certificate, server, mode) at the end;
# records nothing (copy the table into RESULTS.md). Needs openssl, nginx, ab (apache2-utils), curl, python3; builds ferry (release) unless --ferry.
set -euo pipefail

ROUNDS=3
SECS=5
CLIENTS=4
TLSV=1.3
FERRY=
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --tls) TLSV=$2; shift ;;
        --ferry) FERRY=$2; shift ;;
        -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "handshake: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done
case $TLSV in
    1.3) S_TIME_V=-tls1_3 AB_V=TLS1.3 NGINX_V=TLSv1.3 ;;
    1.2) S_TIME_V=-tls1_2 AB_V=TLS1.2 NGINX_V=TLSv1.2 ;;
    *) echo "handshake: --tls 1.3 or 1.2" >&2; exit 64 ;;
esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=bench/tools.sh
source "$ROOT/bench/tools.sh"
bench_tools handshake openssl:openssl nginx:nginx-light ab:apache2-utils curl:curl python3:python3
if [[ -z $FERRY ]]; then
    (cd "$ROOT" && cargo build --release --locked --bin ferry >&2)
    FERRY=$ROOT/target/release/ferry
fi

WORK=$(mktemp -d /tmp/ferry-handshake.XXXXXX)
SRV=
cleanup() {
    [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/files" "$WORK/tmp"
head -c 4096 /dev/urandom >"$WORK/files/f4k.bin"
# nginx's workers run as an unprivileged user: they must reach the file (the keys are read by
# the master, as root).
chmod 755 "$WORK" "$WORK/files"
chmod 644 "$WORK/files/f4k.bin"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$WORK/rsa.key" -out "$WORK/rsa.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$WORK/ecdsa.key" -out "$WORK/ecdsa.crt" 2>/dev/null
TCK=$(getconf CLK_TCK)

start() { # start SERVER CERT: sets SRV, PIDS, PORT, ADMIN
    local name=$1 cert=$2
    PORT=$(free_port)
    ADMIN=
    if [[ $name == nginx ]]; then
        cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    sendfile on;
    access_log off;
    ssl_protocols $NGINX_V;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $WORK/$cert.crt;
        ssl_certificate_key $WORK/$cert.key;
        location /static/ { alias $WORK/files/; }
    }
}
EOF
        nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >/dev/null 2>&1 &
    else
        ADMIN=$(free_port)
        cat >"$WORK/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$(free_port)"]
access_log = "off"
[admin]
listen = "127.0.0.1:$ADMIN"
[[location]]
prefix = "/static/"
root = "$WORK/files"
[tls]
listen = ["127.0.0.1:$PORT"]
cert = "$WORK/$cert.crt"
key = "$WORK/$cert.key"
alpn = ["http/1.1"]
EOF
        "$FERRY" serve --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
    fi
    SRV=$!
    local ok=
    for _ in $(seq 100); do
        if curl -sfk -o "$WORK/check.bin" "https://127.0.0.1:$PORT/static/f4k.bin"; then ok=1; break; fi
        sleep 0.1
    done
    [[ -n $ok ]] && cmp -s "$WORK/check.bin" "$WORK/files/f4k.bin" ||
        { echo "handshake: $name ($cert) did not serve the file" >&2; tail -n 5 "$WORK"/*.log >&2; exit 1; }
    PIDS="$SRV $(pgrep -P "$SRV" | tr '\n' ' ' || true)"
}

stop() {
    kill -TERM "$SRV"
    wait "$SRV" 2>/dev/null || true
    SRV=
}

ticks() { # utime+stime of PIDS
    local sum=0 pid u s
    for pid in $PIDS; do
        read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
        sum=$((sum + u + s))
    done
    echo "$sum"
}

metric() { # metric NAME: the sum of ferry's series NAME (0 for nginx)
    [[ -n $ADMIN ]] || { echo 0; return; }
    curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v n="$1" '$1 ~ "^"n"[{]" { s += $2 } END { print s + 0 }'
}

measure() { # measure MODE: prints "conns conn/s cpu_us_per_conn resumed_share ferry_resumed/ferry_handshakes"
    local mode=$1 t0 t1 c0 c1 h0 h1 r0 r1 conns=0 reused=0 new=0 out i
    h0=$(metric ferry_tls_handshakes_total)
    r0=$(metric ferry_tls_resumed_total)
    c0=$(ticks)
    t0=$(date +%s.%N)
    if [[ $mode == ab ]]; then
        out=$(ab -q -n 3000 -c 32 -f "$AB_V" "https://127.0.0.1:$PORT/static/f4k.bin" 2>&1)
        t1=$(date +%s.%N)
        c1=$(ticks)
        conns=$(awk '/^Complete requests:/ { print $3 }' <<<"$out")
        local failed
        failed=$(awk '/^Failed requests:/ { print $3 }' <<<"$out")
        [[ $failed == 0 ]] || echo "handshake: ab: $failed failed requests" >&2
    else
        local flag=-new
        [[ $mode == resumed ]] && flag=-reuse
        local clients=()
        for i in $(seq "$CLIENTS"); do
            openssl s_time -connect "127.0.0.1:$PORT" -www /static/f4k.bin $flag "$S_TIME_V" \
                -time "$SECS" >"$WORK/s_time.$i" 2>&1 &
            clients+=($!)
        done
        wait "${clients[@]}" || true
        t1=$(date +%s.%N)
        c1=$(ticks)
        for i in $(seq "$CLIENTS"); do
            out=$(cat "$WORK/s_time.$i")
            conns=$((conns + $(awk '/connections in .* real seconds/ { n = $1 } END { print n + 0 }' <<<"$out")))
            reused=$((reused + $(tr -cd 'r' <<<"$(grep -E '^[*r]+$' <<<"$out" || true)" | wc -c)))
            new=$((new + $(tr -cd '*' <<<"$(grep -E '^[*r]+$' <<<"$out" || true)" | wc -c)))
            # bytes read per connection: the 4 KiB body and its head, or a failure.
            awk '/bytes read per connection/ { if ($(NF - 4) < 4096) { print "handshake: s_time read only " $(NF - 4) " bytes per connection" > "/dev/stderr" } }' <<<"$out"
        done
    fi
    h1=$(metric ferry_tls_handshakes_total)
    r1=$(metric ferry_tls_resumed_total)
    awk -v n="$conns" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v tck="$TCK" -v r="$reused" \
        -v w="$new" -v fr="$((r1 - r0))" -v fh="$((h1 - h0))" 'BEGIN {
            share = (r + w) ? sprintf("%.0f%%", 100 * r / (r + w)) : "-"
            printf "%7d %8.0f %10.0f %8s %13s\n", n, n / (t1 - t0), c * 1e6 / tck / n, share, fr "/" fh
        }'
}

printf '%-6s %-6s %-8s %7s %8s %10s %8s %13s\n' cert server mode conns conn/s "CPU µs/c" "s_time r" "ferry res/hs"
declare -A RESULTS
SERVERS=(ferry nginx)
for round in $(seq "$ROUNDS"); do
    order=("${SERVERS[@]}")
    ((round % 2)) || order=(nginx ferry)
    for cert in rsa ecdsa; do
        for name in "${order[@]}"; do
            start "$name" "$cert"
            for mode in full resumed ab; do
                line=$(measure "$mode")
                printf '%-6s %-6s %-8s %s\n' "$cert" "$name" "$mode" "$line"
                RESULTS[$cert/$name/$mode]+="$line"$'\n'
            done
            stop
        done
    done
done

summary() { # summary VALUES...: median [min-max]
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (v[1] == v[NR]) printf "%.0f", m; else printf "%.0f [%.0f-%.0f]", m, v[1], v[NR] }'
}
echo
echo "TLS $TLSV, $ROUNDS rounds, s_time: $CLIENTS clients x ${SECS}s; medians [min-max]; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
printf '| cert | mode | ferry conn/s | nginx conn/s | ratio | ferry CPU µs/conn | nginx CPU µs/conn | CPU ratio |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
for cert in rsa ecdsa; do
    for mode in full resumed ab; do
        declare -a fr fc nr nc
        mapfile -t fr < <(printf '%s' "${RESULTS[$cert/ferry/$mode]}" | awk 'NF { print $2 }')
        mapfile -t fc < <(printf '%s' "${RESULTS[$cert/ferry/$mode]}" | awk 'NF { print $3 }')
        mapfile -t nr < <(printf '%s' "${RESULTS[$cert/nginx/$mode]}" | awk 'NF { print $2 }')
        mapfile -t nc < <(printf '%s' "${RESULTS[$cert/nginx/$mode]}" | awk 'NF { print $3 }')
        med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
        ratio=$(awk -v a="$(med "${fr[@]}")" -v b="$(med "${nr[@]}")" 'BEGIN { printf "%.2f", a / b }')
        cratio=$(awk -v a="$(med "${fc[@]}")" -v b="$(med "${nc[@]}")" 'BEGIN { printf "%.2f", a / b }')
        printf '| %s | %s | %s | %s | %s× | %s | %s | %s× |\n' "$cert" "$mode" \
            "$(summary "${fr[@]}")" "$(summary "${nr[@]}")" "$ratio" \
            "$(summary "${fc[@]}")" "$(summary "${nc[@]}")" "$cratio"
    done
done
