#!/usr/bin/env bash
# The guest half of bench/vm.sh: runs INSIDE the kTLS VM (tests/vm/run.sh), as root, on a
# kernel with the `tls` module. Not meant to be run by hand on the host.
#
#   vm-guest.sh OUT_DIR FERRY_BIN DOWNLOADS SIZE_MIB [aesni|generic-crypto] [ROUNDS]
#
# First loads aesni_intel and ghash_clmulni_intel, as udev would at boot on a real x86
# machine (the VM's initramfs has no udev, so without this the kernel's kTLS would use the
# generic C AES-GCM while OpenSSL and rustls use AES-NI); "generic-crypto" skips that.
#
# Serves one SIZE_MIB file (pseudo-random, on the guest's tmpfs) over HTTPS from, in turn:
#   ferry-require  ferry [tls] ktls = "require"                 (expect path ktls_sendfile)
#   ferry-off      ferry [tls] ktls = "off"                     (expect path tls_buffered)
#   nginx-ktls     nginx ssl_conf_command Options KTLS; sendfile on
# and for each: checks the body once byte for byte (while strace counts the server's
# send syscalls: not measured), then downloads it DOWNLOADS times with
# `curl -sk --http1.1`, one CPU window per download (server utime+stime from /proc, as in
# bench/run.sh), with /proc/net/tls_stat TlsTxSw read before and after the downloads.
# ROUNDS (default 1) repeats the three servers that many times, the order reversed every
# other round, so a disturbance of the (emulated) machine falls on all of them.
# Writes OUT_DIR/results.tsv (one line per server and round), OUT_DIR/details and OUT_DIR/notes;
# bench/vm.sh formats them. Progress goes to stderr.
set -euo pipefail

OUT=$1 FERRY=$2 N=$3 SIZE_MIB=$4 CRYPTO=${5:-aesni} ROUNDS=${6:-1}
W=/tmp/ferry-bench
PORT=8443 HTTP_PORT=8080 ADMIN_PORT=9090
CLK_TCK=$(getconf CLK_TCK)
SIZE=$((SIZE_MIB * 1024 * 1024))
mkdir -p "$OUT" "$W/files"
: >"$OUT/results.tsv"
: >"$OUT/details"
: >"$OUT/notes"

log() { printf '[guest %s] %s\n' "$(date -u +%T)" "$*" >&2; }
note() { log "NOTE: $*"; echo "- $*" >>"$OUT/notes"; }
fail() { log "FATAL: $*"; echo "- FATAL${CUR:+ ($CUR)}: $*" >>"$OUT/notes"; exit 1; }
detail() { echo "$*" >>"$OUT/details"; }
fmt() { awk -v x="$1" -v p="${2:-1}" 'BEGIN { printf "%.*f", p, x }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------- facts and prerequisites
CUR=
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp || fail "no tls ULP in this guest: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
[[ -r /proc/net/tls_stat ]] || fail "/proc/net/tls_stat missing"
command -v nginx >/dev/null || fail "nginx is not installed in the guest image (bench/vm.sh sets KTLS_VM_EXTRA_PACKAGES=nginx)"
[[ -x $FERRY ]] || fail "no ferry binary at $FERRY"
if [[ $CRYPTO != generic-crypto ]]; then
    modprobe aesni_intel 2>/dev/null || note "modprobe aesni_intel failed: kTLS uses the kernel's generic AES"
    modprobe ghash_clmulni_intel 2>/dev/null || note "modprobe ghash_clmulni_intel failed"
fi
# the gcm(aes) implementations the kernel can pick for kTLS, best (highest priority) first
gcm_drivers() {
    awk -F': *' '$1 ~ /^name/ { n = $2 } $1 ~ /^driver/ { d = $2 } $1 ~ /^priority/ { p = $2 }
        $1 ~ /^refcnt/ { r = $2 } /^$/ { if (n == "gcm(aes)") print p, d " (priority " p ", refcnt " r ")"; n = "" }
        END { if (n == "gcm(aes)") print p, d " (priority " p ", refcnt " r ")" }' /proc/crypto | sort -rn | cut -d' ' -f2- | paste -sd';' - | sed 's/;/; /g'
}
{
    echo "guest: kernel crypto: $( [[ $CRYPTO == generic-crypto ]] && echo "aesni_intel NOT loaded on purpose (generic-crypto)" || echo "aesni_intel + ghash_clmulni_intel loaded by the script (no udev in the VM)"); loaded: $(lsmod | awk 'NR > 1 && $1 ~ /aes|ghash|gcm/ { printf "%s%s", sep, $1; sep = ", " }')"
    echo "guest: kernel $(uname -r), $(nproc) vCPUs, $(awk '/^MemTotal/ { printf "%.0f MiB RAM", $2 / 1024 }' /proc/meminfo), tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
    echo "guest: $(nginx -v 2>&1); $(openssl version); $(curl --version | head -1 | awk '{ print $1 " " $2 }'); ferry: $("$FERRY" --version 2>&1 | head -1)"
    echo "guest: /tmp is $(stat -f -c %T /tmp)"
} >"$OUT/facts"
cat "$OUT/facts" >&2

# ---------------------------------------------------------------- file and certificate
t0=$(date +%s)
log "generating a $SIZE_MIB MiB file"
{ openssl enc -aes-128-ctr -nosalt -pass pass:ferry-bench -pbkdf2 -in /dev/zero 2>/dev/null || true; } |
    head -c "$SIZE" >"$W/files/big.bin"
[[ $(stat -c %s "$W/files/big.bin") -eq $SIZE ]] || fail "could not generate the file"
head -c 4096 /dev/urandom >"$W/files/f4k.bin"
chmod 755 "$W" "$W/files"
chmod 644 "$W"/files/*
log "file ready in $(($(date +%s) - t0)) s"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$W/key.pem" -out "$W/cert.pem" >/dev/null 2>&1; then
    note "openssl req failed: using the image's /etc/ktls-vm certificate"
    cp /etc/ktls-vm/cert.pem "$W/cert.pem"
    cp /etc/ktls-vm/key.pem "$W/key.pem"
fi

# ---------------------------------------------------------------- /proc helpers (as bench/run.sh)
proc_ticks() {
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}
server_ticks() {
    local u=0 s=0 pu ps p
    read -r pu ps < <(proc_ticks "$SRV_PID")
    u=$((u + pu)) s=$((s + ps))
    for p in $(pgrep -P "$SRV_PID" || true); do
        read -r pu ps < <(proc_ticks "$p")
        u=$((u + pu)) s=$((s + ps))
    done
    echo "$u $s"
}
machine_ticks() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9, $9; exit }' /proc/stat; }
alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}
tls_tx_sw() { awk '$1 == "TlsTxSw" { print $2 }' /proc/net/tls_stat; }
metric_sum() { # file name
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF; found = 1 } END { if (found) printf "%.0f\n", s; else print "NA" }' "$1"
}
metric_deltas() { # file0 file1 name -> "labels delta", delta > 0
    awk -v n="$3" 'FNR == NR { if (index($1, n "{") == 1) a[$1] = $NF; next }
        index($1, n "{") == 1 { d = $NF - a[$1]; if (d > 0) printf "%s %.0f\n", $1, d }' "$1" "$2"
}

# ---------------------------------------------------------------- servers
start_ferry() { # ktls-mode
    local d=$W/ferry-$1 i
    mkdir -p "$d"
    cat >"$d/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$HTTP_PORT"]
access_log = "off"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[tls]
listen = ["127.0.0.1:$PORT"]
cert = "$W/cert.pem"
key = "$W/key.pem"
ktls = "$1"
[[location]]
prefix = "/static/"
root = "$W/files"
EOF
    "$FERRY" serve --config "$d/ferry.toml" >"$d/ferry.log" 2>&1 &
    SRV_PID=$!
    SRV_LOG=$d/ferry.log
    for i in $(seq 300); do
        grep -q "listening https 127.0.0.1:$PORT" "$d/ferry.log" && break
        alive "$SRV_PID" || break
        sleep 0.1
    done
    grep -q "listening https 127.0.0.1:$PORT" "$d/ferry.log" ||
        { tail -n 30 "$d/ferry.log" >&2; fail "ferry (ktls=$1) did not start"; }
}
start_nginx() {
    local d=$W/nginx
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $W/cert.pem;
        ssl_certificate_key $W/key.pem;
        ssl_protocols TLSv1.3;
        ssl_conf_command Options KTLS;
        location /static/ { alias $W/files/; }
    }
}
EOF
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -t >"$d/configtest.log" 2>&1 ||
        { cat "$d/configtest.log" >&2; fail "nginx -t failed"; }
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
    SRV_PID=$!
    SRV_LOG=$d/error.log
}
wait_ready() {
    local i
    for i in $(seq 300); do
        alive "$SRV_PID" || return 1
        timeout 10 curl -skf --http1.1 -o /dev/null "https://127.0.0.1:$PORT/static/f4k.bin" && return 0
        sleep 0.2
    done
    return 1
}
stop_server() {
    [[ -n ${SRV_PID:-} ]] || return 0
    local pid=$SRV_PID i rc=0
    SRV_PID=
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 300); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        note "$CUR: still running 30 s after SIGTERM -- sent SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [[ $rc == 0 ]] || note "$CUR: exit status $rc after SIGTERM"
}

# strace -c of the server's send syscalls during one download (the content check)
SENDCALLS=sendfile,splice,write,writev,sendmsg,sendto
strace_start() {
    local pids=() p
    pids=(-p "$SRV_PID")
    for p in $(pgrep -P "$SRV_PID" || true); do pids+=(-p "$p"); done
    strace -f -qq -c -e trace="$SENDCALLS" -o "$W/strace.$CUR" "${pids[@]}" 2>"$W/strace.$CUR.err" &
    STRACE_PID=$!
    sleep 1 # let it attach
}
strace_stop() {
    kill -INT "$STRACE_PID" 2>/dev/null || true
    wait "$STRACE_PID" 2>/dev/null || true
    # "%time seconds usecs/call calls [errors] syscall" -> "sendfile 12, writev 3"
    SYSCALLS=$(awk '$NF ~ /^(sendfile|splice|write|writev|sendmsg|sendto)$/ && $4 ~ /^[0-9]+$/ { printf "%s%s %s", sep, $NF, $4; sep = ", " }' "$W/strace.$CUR" 2>/dev/null || true)
    SYSCALLS=${SYSCALLS:-none seen}
}

# ---------------------------------------------------------------- one server
run_server() { # name
    CUR=$1
    local cfg cipher url="https://127.0.0.1:$PORT/static/big.bin" i size t bytes=0
    local su0 ss0 su ss b0 t0 b1 t1 srv=0 busy=0 total=0 tx0 tx1 path="" evidence
    trap 'stop_server' EXIT
    case $CUR in
        ferry-require) start_ferry require; cfg='[tls] ktls = "require"' ;;
        ferry-off) start_ferry off; cfg='[tls] ktls = "off"' ;;
        nginx-ktls) start_nginx; cfg='ssl_conf_command Options KTLS; sendfile on; TLSv1.3' ;;
    esac
    wait_ready || { tail -n 20 "$SRV_LOG" >&2 || true; fail "did not become ready"; }
    log "$CUR: pid $SRV_PID ready"
    detail "[$CUR] $cfg (round $ROUND)"
    cipher=$(timeout 60 curl -sv -k --http1.1 -o /dev/null "https://127.0.0.1:$PORT/static/f4k.bin" 2>&1 | sed -n 's/.*SSL connection using //p' | head -1 | tr -d '\r') || true
    detail "  negotiated (curl -v): ${cipher:-?}"

    # content check, with strace counting the server's send syscalls (not measured)
    strace_start
    local check
    check=$( (timeout 900 curl -sS --fail -k --http1.1 "$url" | cmp - "$W/files/big.bin") 2>&1) ||
        { strace_stop; fail "content check failed: ${check:-curl or cmp failed}"; }
    strace_stop
    detail "  content check OK ($SIZE_MIB MiB byte for byte); server send syscalls during it (strace -c): $SYSCALLS"
    log "$CUR: content check OK; send syscalls: $SYSCALLS"

    [[ $CUR != ferry-* ]] || timeout 30 curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$W/metrics.$CUR.0" || true
    tx0=$(tls_tx_sw)
    : >"$W/downloads.$CUR"
    for i in $(seq "$N"); do
        read -r su0 ss0 < <(server_ticks)
        read -r b0 t0 _ < <(machine_ticks)
        timeout 1800 curl -s -k --http1.1 -o /dev/null -w '%{size_download} %{time_total}\n' "$url" >"$W/curl.out" ||
            fail "curl failed on download $i"
        read -r b1 t1 _ < <(machine_ticks)
        read -r su ss < <(server_ticks)
        srv=$((srv + su - su0 + ss - ss0)) busy=$((busy + b1 - b0)) total=$((total + t1 - t0))
        detail "  download $i: server user=$((su - su0)) sys=$((ss - ss0)) ticks; $(cat "$W/curl.out") (bytes, s)"
        read -r size t <"$W/curl.out"
        [[ $size -eq $SIZE ]] || fail "SHORT DOWNLOAD $i: $size bytes, expected $SIZE"
        echo "$size $t" >>"$W/downloads.$CUR"
        bytes=$((bytes + size))
        log "$CUR: download $i/$N: $(fmt "$(awk -v s="$size" -v t="$t" 'BEGIN { print s / 1048576 / t }')" 1) MiB/s"
    done
    tx1=$(tls_tx_sw)
    alive "$SRV_PID" || fail "server died during the downloads"
    detail "  guest CPU ticks (1/$CLK_TCK s) over the $N download windows: server=$srv, guest busy=$busy of $total; TlsTxSw $tx0 -> $tx1"
    detail "  kernel gcm(aes) implementations after the downloads, highest priority (= the one kTLS gets) first: $(gcm_drivers)"
    if [[ $CUR == ferry-* ]]; then
        timeout 30 curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$W/metrics.$CUR.1" || true
        if [[ -s $W/metrics.$CUR.0 && -s $W/metrics.$CUR.1 ]]; then
            path=$(metric_deltas "$W/metrics.$CUR.0" "$W/metrics.$CUR.1" ferry_body_bytes_total |
                awk '{ match($1, /path="[^"]*"/); p[NR] = substr($1, RSTART + 6, RLENGTH - 7); d[NR] = $2; t += $2 }
                     END { for (i = 1; i <= NR; i++) if (d[i] * 100 >= t) { printf "%s%s %.0f%%", sep, p[i], 100 * d[i] / t; sep = ", " } }')
            local z0 z1
            z0=$(metric_sum "$W/metrics.$CUR.0" ferry_zero_copy_bytes_total)
            z1=$(metric_sum "$W/metrics.$CUR.1" ferry_zero_copy_bytes_total)
            path="$path (zero-copy $(awk -v z="$((z1 - z0))" -v b="$bytes" 'BEGIN { printf "%.0f%%", 100 * z / b }'))"
            local m
            for m in ferry_body_bytes_total ferry_zero_copy_bytes_total ferry_tls_handshakes_total ferry_fallbacks_total; do
                metric_deltas "$W/metrics.$CUR.0" "$W/metrics.$CUR.1" "$m" | sed 's/^/    Δ /' >>"$OUT/details"
            done
        else
            path="? (/metrics not scraped)"
            note "$CUR: could not scrape /metrics"
        fi
    else
        path="OpenSSL SSL_sendfile"
    fi
    # kTLS evidence: TlsTxSw counts connections that got software kTLS TX
    evidence="$((tx1 - tx0))"
    case $CUR in
        ferry-require | nginx-ktls)
            ((tx1 - tx0 >= N)) || note "$CUR: TlsTxSw rose by $((tx1 - tx0)) over $N downloads: kTLS was NOT used for every download"
            ;;
        ferry-off)
            ((tx1 == tx0)) || note "$CUR: TlsTxSw rose by $((tx1 - tx0)) although ktls = \"off\""
            ;;
    esac
    case $CUR in
        ferry-require) [[ $path == "ktls_sendfile 100%"* ]] || note "$CUR: body bytes did not all go by ktls_sendfile: $path" ;;
        ferry-off) [[ $path == "tls_buffered 100%"* ]] || note "$CUR: body bytes did not all go by tls_buffered: $path" ;;
    esac
    if [[ $CUR == nginx-ktls ]] && [[ $SYSCALLS != *sendfile* ]]; then
        note "$CUR: strace saw no sendfile(2) from the nginx workers during the check download"
    fi
    local mibs cpu
    mibs=$(awk '{ print $1 / 1048576 / $2 }' "$W/downloads.$CUR" | median)
    cpu=$(awk -v t="$srv" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { print (t / hz) / (b / 1073741824) }')
    stop_server
    trap - EXIT
    if [[ $CUR == nginx-ktls ]] && grep -qE '\[(alert|crit|emerg)\]' "$SRV_LOG" 2>/dev/null; then
        note "nginx error log has alerts: $(grep -E '\[(alert|crit|emerg)\]' "$SRV_LOG" | head -3 | tr '\n' ' ')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CUR" "$ROUND" "$cfg" "${cipher:-?}" "$path" "$SYSCALLS" "$evidence" \
        "$(fmt "$mibs" 1)" "$(fmt "$cpu" 2)" >>"$OUT/results.tsv"
}

FAILED=0
for ROUND in $(seq "$ROUNDS"); do
    order=(ferry-require ferry-off nginx-ktls)
    ((ROUND % 2)) || order=(nginx-ktls ferry-off ferry-require)
    for s in "${order[@]}"; do
        log "=== $s (round $ROUND of $ROUNDS) ==="
        (run_server "$s") || { FAILED=1; printf '%s\t%s\tFAILED\n' "$s" "$ROUND" >>"$OUT/results.tsv"; log "$s FAILED -- continuing"; }
    done
done
exit "$FAILED"
