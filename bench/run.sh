#!/usr/bin/env bash
# ferry benchmark harness: ferry (sendfile / splice / buffered) vs nginx (sendfile on).
# See bench/README.md for what is measured and how to read the results.
#
#   bench/run.sh [--quick] [--only LIST] [--no-record]
#
#   --quick        1 download of the 1 GiB file instead of 3, wrk runs of 3 s instead of 10 s
#   --only LIST    comma-separated subset of: ferry, sendfile, splice, buffered, nginx
#                  (ferry = all three ferry send paths). Default: everything.
#   --no-record    print the results section to stdout but do not append it to bench/RESULTS.md
#   --max-wait S   before each server, wait up to S seconds (default 120) for the machine to be
#                  quiet (other processes < 15% CPU over 2 s); 0 = do not wait
#
# Progress goes to stderr; the results section (markdown) goes to stdout and, unless
# --no-record, is appended to bench/RESULTS.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/run.sh${*:+ $*}"

QUICK=0
ONLY=all
RECORD=1
MAX_WAIT=120

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() {
    log "FATAL: $*"
    # inside a server run: keep the reason for the report too
    [[ -n ${RES:-} && -d ${RES:-} ]] && echo "- FATAL ($CUR_NAME): $*" >>"$RES/notes"
    exit 1
}

while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --only) [[ $# -ge 2 ]] || die "--only needs an argument"; ONLY=$2; shift ;;
        --only=*) ONLY=${1#*=} ;;
        --no-record) RECORD=0 ;;
        --max-wait) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--max-wait needs a number of seconds"; MAX_WAIT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

# ---------------------------------------------------------------- parameters
if ((QUICK)); then N_DOWNLOADS=1; WRK_SECS=3; else N_DOWNLOADS=3; WRK_SECS=10; fi
WRK_THREADS=2
WRK_CONNS=50
BIG_SIZE=$((1024 * 1024 * 1024))
CLK_TCK=$(getconf CLK_TCK)
FERRY_BIN=$ROOT/target/release/ferry
RESULTS_MD=$BENCH_DIR/RESULTS.md

# runs, in order: "ferry:<send_path>" or "nginx"
RUNS=()
IFS=',' read -r -a _only <<<"$ONLY"
for tok in "${_only[@]}"; do
    case $tok in
        all) RUNS+=(ferry:sendfile ferry:splice ferry:buffered nginx) ;;
        ferry) RUNS+=(ferry:sendfile ferry:splice ferry:buffered) ;;
        sendfile | splice | buffered) RUNS+=("ferry:$tok") ;;
        nginx) RUNS+=(nginx) ;;
        *) die "--only: unknown server '$tok' (want ferry, sendfile, splice, buffered, nginx)" ;;
    esac
done
NEED_FERRY=0
for r in "${RUNS[@]}"; do [[ $r == ferry:* ]] && NEED_FERRY=1; done

# ---------------------------------------------------------------- cleanup
WORK=
RUN_PID=
cleanup() {
    local rc=$? pid i
    set +e
    trap - INT TERM
    if [[ -n $RUN_PID ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        # the per-server subshell: SIGTERM makes it stop its server cleanly (its EXIT trap)
        kill -TERM "$RUN_PID" 2>/dev/null
        for i in $(seq 200); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -n $WORK && -f $WORK/pids ]]; then
        # every process we ever started (servers, nginx workers); kill survivors by pid
        while read -r pid; do
            [[ -n $pid ]] || continue
            if kill -0 "$pid" 2>/dev/null; then
                log "cleanup: killing leftover process $pid"
                kill -TERM "$pid" 2>/dev/null
            fi
        done <"$WORK/pids"
        sleep 0.5
        while read -r pid; do
            [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        done <"$WORK/pids"
    fi
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted (SIGINT): stopping"; exit 130' INT
trap 'log "terminated (SIGTERM): stopping"; exit 143' TERM

# Every process we start is recorded (by pid) in $WORK/pids until it has been reaped,
# so the EXIT trap can kill whatever is still running, and nothing else.
track() { echo "$1" >>"$WORK/pids"; }
untrack() { sed -i "/^$1\$/d" "$WORK/pids" 2>/dev/null || true; }
# Run a command as a tracked background child and wait for it. Unlike a foreground
# child, this keeps the shell responsive to SIGINT/SIGTERM (bash runs traps during `wait`).
bg_wait() {
    local p rc=0
    "$@" &
    p=$!
    track "$p"
    wait "$p" || rc=$?
    untrack "$p"
    return "$rc"
}

# ---------------------------------------------------------------- tools
ensure_tools() {
    local missing=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get update -qq >&2 || die "apt-get update failed"
        timeout 900 apt-get install -y -qq "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
        # Debian's postinst may start the packaged nginx on :80; it does not matter
        # (we use our own config and ports), but it would add noise: stop it if it runs.
        if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
            timeout 30 systemctl stop nginx >/dev/null 2>&1 || true
        fi
    fi
    PATH=$PATH:/usr/sbin:/sbin
    command -v nginx >/dev/null || die "nginx not found after install"
    command -v python3 >/dev/null || command -v ss >/dev/null || die "need python3 or ss to pick free ports"
}

free_port() {
    if command -v python3 >/dev/null; then
        timeout 10 python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    else
        local p
        for _ in $(seq 100); do
            p=$((20000 + RANDOM % 30000))
            ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
        done
        die "no free port found"
    fi
}

# ---------------------------------------------------------------- /proc helpers
# ticks of one process: utime+stime of all its threads (+ cutime+cstime of reaped children)
proc_ticks() {
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
    s=${s##*) } # drop "pid (comm) " -- comm may contain spaces
    read -r -a f <<<"$s"
    # f[0] is field 3 (state); utime=14 -> f[11], stime=15 -> f[12], cutime -> f[13], cstime -> f[14]
    echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}
# "USER SYS" ticks summed over the server process and its direct children (nginx workers)
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
# machine-wide ticks from /proc/stat: "busy total steal" (busy = user nice system irq softirq)
machine_ticks() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9, $9; exit }' /proc/stat; }

# A measured window. win_begin / win_end LABEL; win_end sets W_SRV (server ticks, user+sys),
# writes the CPU accounting of the window to the details, and notes a disturbed window:
#   client = this shell and its reaped children (curl / wrk / the harness itself),
#   other  = machine busy ticks - server - client (other processes on the shared machine).
win_begin() {
    local me=$BASHPID
    read -r W_SU0 W_SS0 < <(server_ticks)
    read -r W_CU0 W_CS0 < <(proc_ticks "$me")
    read -r W_B0 W_T0 W_ST0 < <(machine_ticks)
}
win_end() {
    local me=$BASHPID su ss cu cs b t st client busy total steal other
    read -r su ss < <(server_ticks)
    read -r cu cs < <(proc_ticks "$me")
    read -r b t st < <(machine_ticks)
    W_SRV=$((su - W_SU0 + ss - W_SS0))
    client=$((cu - W_CU0 + cs - W_CS0))
    busy=$((b - W_B0)) total=$((t - W_T0)) steal=$((st - W_ST0))
    other=$((busy - W_SRV - client))
    echo "  $1 CPU ticks (1/$CLK_TCK s): server user=$((su - W_SU0)) sys=$((ss - W_SS0)); client+harness=$client; other processes=$other; steal=$steal; capacity=$total" >>"$RES/details"
    if ((total > 0 && (other * 100 > total * 10 || steal * 100 > total * 5))); then
        note "$CUR_NAME: $1 disturbed: other processes used $((other * 100 / total))% and steal $((steal * 100 / total))% of the machine's CPU during it"
    fi
}

# % of the machine's CPU busy over 2 s (no server of ours runs at that point)
machine_busy_pct() {
    local b0 t0 b1 t1
    read -r b0 t0 _ < <(machine_ticks)
    sleep 2
    read -r b1 t1 _ < <(machine_ticks)
    echo $(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
# wait (bounded) for the shared machine to be quiet before starting a server
wait_quiet() {
    local start=$SECONDS busy
    busy=$(machine_busy_pct)
    while ((busy >= 15 && SECONDS - start < MAX_WAIT)); do
        log "machine busy (${busy}% CPU used by other processes), waiting for it to calm down (up to ${MAX_WAIT}s)"
        sleep 5
        busy=$(machine_busy_pct)
    done
    QUIET_BUSY=$busy
    QUIET_INFO="machine ${busy}% busy before start (waited $((SECONDS - start))s)"
}

alive() { # not gone and not a zombie
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

# ---------------------------------------------------------------- work dir + files
make_workdir() {
    WORK=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
    chmod 755 "$WORK"
    : >"$WORK/pids"
    mkdir -p "$WORK/files" "$WORK/results"
}
make_files() {
    log "work dir $WORK: generating files"
    # 1 GiB of non-repeating pseudo-random bytes (AES-CTR keystream: fast, and a
    # wrong offset anywhere in a zero-copy path shows up in the content check)
    { bg_wait timeout 300 openssl enc -aes-128-ctr -nosalt -pass pass:ferry-bench -pbkdf2 -in /dev/zero 2>/dev/null || true; } |
        head -c "$BIG_SIZE" >"$WORK/files/big.bin"
    head -c 4096 /dev/urandom >"$WORK/files/f4k.bin"
    head -c 65536 /dev/urandom >"$WORK/files/f64k.bin"
    [[ $(stat -c %s "$WORK/files/big.bin") -eq $BIG_SIZE ]] || die "big.bin generation failed (openssl?)"
    chmod 755 "$WORK/files"
    chmod 644 "$WORK"/files/*
    log "warming page cache"
    cat "$WORK"/files/*.bin >/dev/null
}

# ---------------------------------------------------------------- servers
start_nginx() {
    local port=$1 d=$WORK/nginx
    mkdir -p "$d/tmp"
    local user_line=""
    ((EUID != 0)) || user_line="user root;" # files live under a 0755 dir anyway
    cat >"$d/nginx.conf" <<EOF
$user_line
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
        listen 127.0.0.1:$port;
        location /static/ { alias $WORK/files/; }
    }
}
EOF
    timeout 20 nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -t >"$d/configtest.log" 2>&1 ||
        { cat "$d/configtest.log" >&2; die "nginx -t failed"; }
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
    SRV_PID=$!
    track "$SRV_PID"
    SRV_LOG=$d/error.log
    wait_ready "http://127.0.0.1:$port/static/f4k.bin" || {
        tail -n 20 "$d/error.log" "$d/stdout.log" >&2 || true
        die "nginx did not become ready"
    }
    local w
    for w in $(pgrep -P "$SRV_PID"); do track "$w"; done
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "nginx master $SRV_PID, workers: $SRV_KIDS"
}

start_ferry() {
    local send_path=$1 port=$2 admin=$3 d=$WORK/ferry-$1
    mkdir -p "$d"
    cat >"$d/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
access_log = "off"
[admin]
listen = "127.0.0.1:$admin"
[io]
send_path = "$send_path"
[[location]]
prefix = "/static/"
root = "$WORK/files"
EOF
    "$FERRY_BIN" serve --config "$d/ferry.toml" >"$d/ferry.log" 2>&1 &
    SRV_PID=$!
    track "$SRV_PID"
    SRV_LOG=$d/ferry.log
    wait_ready "http://127.0.0.1:$admin/healthz" || {
        log "ferry log (tail):"; tail -n 30 "$d/ferry.log" >&2 || true
        die "ferry ($send_path) did not become ready"
    }
    # readiness line on stdout; give it a moment in case it is printed just after bind
    local i
    for i in $(seq 20); do grep -q "listening http 127.0.0.1:$port" "$d/ferry.log" && break; sleep 0.1; done
    if ! grep -q "listening http 127.0.0.1:$port" "$d/ferry.log"; then
        note "ferry ($send_path): healthz answered but no 'listening http 127.0.0.1:$port' line in its output"
    fi
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "ferry ($send_path) pid $SRV_PID, http :$port, admin :$admin"
}

# poll URL until it answers 2xx, at most ~10 s; fail early if the server died
wait_ready() {
    local url=$1 i
    for i in $(seq 100); do
        alive "$SRV_PID" || { log "server process $SRV_PID exited during startup"; return 1; }
        timeout 2 curl -sf -o /dev/null "$url" && return 0
        sleep 0.1
    done
    return 1
}

# the measured window is only valid if the same server processes lived through it
check_server() {
    alive "$SRV_PID" || die "$CUR_NAME: server process $SRV_PID died during $1"
    local now
    now=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    [[ $now == "$SRV_KIDS" ]] || die "$CUR_NAME: server child processes changed during $1 (was '$SRV_KIDS', now '$now'): a worker crashed?"
}

stop_server() {
    [[ -n ${SRV_PID:-} ]] || return 0
    local pid=$SRV_PID rc=0 i kids
    SRV_PID=
    kids=$(pgrep -P "$pid" || true)
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 150); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            note "$CUR_NAME: still running 15 s after SIGTERM -- sent SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    untrack "$pid"
    for i in $kids; do
        for _ in $(seq 50); do kill -0 "$i" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$i" 2>/dev/null; then
            note "$CUR_NAME: child $i still alive 5 s after its parent exited -- killed"
            kill -KILL "$i" 2>/dev/null || true
        fi
        untrack "$i"
    done
    log "$CUR_NAME: stopped (exit status $rc)"
    echo "$rc" >"$RES/exit_status"
}

# ---------------------------------------------------------------- measurements
note() { log "NOTE: $*"; echo "- $*" >>"$RES/notes"; }

fmt() { awk -v x="$1" -v p="${2:-1}" 'BEGIN { printf "%.*f", p, x }'; }

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# sum of all samples of a metric family in ferry's /metrics (labels allowed)
metric_sum() { # file name
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF; found = 1 } END { if (found) printf "%.0f\n", s; else print "NA" }' "$1"
}
scrape() { # tag
    [[ $CUR_KIND == ferry ]] || return 0
    timeout 10 curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$RES/metrics.$1" || {
        note "$CUR_NAME: GET /metrics failed ($1)"
        : >"$RES/metrics.$1"
    }
}
zc_share() { # from-tag to-tag -> "NN%" of body bytes sent zero-copy between the two scrapes
    [[ $CUR_KIND == ferry ]] || { echo "n/a"; return; }
    local z0 z1 b0 b1
    z0=$(metric_sum "$RES/metrics.$1" ferry_zero_copy_bytes_total)
    z1=$(metric_sum "$RES/metrics.$2" ferry_zero_copy_bytes_total)
    b0=$(metric_sum "$RES/metrics.$1" ferry_body_bytes_total)
    b1=$(metric_sum "$RES/metrics.$2" ferry_body_bytes_total)
    if [[ $z0 == NA || $z1 == NA || $b0 == NA || $b1 == NA ]]; then echo "no metric"; return; fi
    awk -v z="$((z1 - z0))" -v b="$((b1 - b0))" 'BEGIN { if (b <= 0) print "no bytes"; else printf "%.0f%%\n", 100 * z / b }'
}

# content check of every file, outside the measured windows
verify_content() {
    local base=$1 f
    for f in f4k.bin f64k.bin big.bin; do
        timeout 120 curl -sS --fail "$base/$f" -o "$RES/check.tmp" || die "$CUR_NAME: GET /static/$f failed"
        cmp -s "$RES/check.tmp" "$WORK/files/$f" || die "$CUR_NAME: /static/$f content differs from the file (size $(stat -c %s "$RES/check.tmp"))"
        rm -f "$RES/check.tmp"
    done
    log "$CUR_NAME: content check OK (4 KiB, 64 KiB, 1 GiB byte-for-byte)"
}

bench_download() {
    local url=$1 i size t bytes=0
    : >"$RES/downloads"
    win_begin
    for i in $(seq "$N_DOWNLOADS"); do
        bg_wait timeout 300 curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "$url" >"$RES/curl.out" ||
            die "$CUR_NAME: curl failed (exit $?) on download $i"
        read -r size t <"$RES/curl.out"
        [[ $size -eq $BIG_SIZE ]] || die "$CUR_NAME: SHORT DOWNLOAD $i: got $size bytes, expected $BIG_SIZE"
        echo "$size $t" >>"$RES/downloads"
        bytes=$((bytes + size))
        log "$CUR_NAME: 1 GiB download $i/$N_DOWNLOADS: $(fmt "$(awk -v s="$size" -v t="$t" 'BEGIN{print s/1048576/t}')" 0) MiB/s"
    done
    echo "1 GiB download x$N_DOWNLOADS, size/time_total each: $(tr '\n' ';' <"$RES/downloads")" >>"$RES/details"
    win_end "1 GiB downloads"
    check_server "1 GiB downloads"
    DL_MIBS=$(awk '{ print $1 / 1048576 / $2 }' "$RES/downloads" | median)
    DL_CPU=$(awk -v t="$W_SRV" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { print (t / hz) / (b / 1073741824) }')
}

# wrk output helpers
to_ms() { # "123.45us" | "1.23ms" | "1.02s" | "1.00m" -> ms
    awk -v v="$1" 'BEGIN {
        if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) } else { print "NA"; exit }
        m = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
        if (m < 0) print "NA"; else print n * m }'
}
to_bytes() { # "500.00MB" -> bytes (wrk uses binary units)
    awk -v v="$1" 'BEGIN {
        match(v, /^[0-9.]+/); n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
        m = (u == "B") ? 1 : (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "TB") ? 1099511627776 : -1
        print n * m }'
}

bench_wrk() { # label url filesize
    local label=$1 url=$2 fsize=$3 out=$RES/wrk.$1 reqs rps p99 readb errs non2xx
    win_begin
    bg_wait timeout $((WRK_SECS + 60)) wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "$CUR_NAME: wrk $label failed"; }
    reqs=$(awk '/requests in/ { print $1; exit }' "$out")
    echo "wrk $label: ${reqs:-?} requests" >>"$RES/details"
    win_end "wrk $label"
    check_server "wrk $label"
    reqs=$(awk '/requests in/ { print $1; exit }' "$out")
    readb=$(awk '/requests in/ { for (i = 1; i <= NF; i++) if ($i == "read") { print $(i - 1); exit } }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$out")
    [[ -n $reqs && -n $rps && -n $p99 && -n $readb ]] || { cat "$out" >&2; die "$CUR_NAME: could not parse wrk output ($label)"; }
    ((reqs > 0)) || die "$CUR_NAME: wrk $label completed no requests"
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    errs=$(awk '/Socket errors:/ { sub(/.*Socket errors: /, ""); print }' "$out")
    [[ -z $non2xx ]] || die "$CUR_NAME: wrk $label: $non2xx non-2xx/3xx responses"
    [[ -z $errs ]] || note "$CUR_NAME: wrk $label socket errors: $errs"
    # every response must have carried the whole body: bytes read per request >= file size
    awk -v b="$(to_bytes "$readb")" -v r="$reqs" -v f="$fsize" 'BEGIN { exit !(b / r >= f * 0.99) }' ||
        die "$CUR_NAME: wrk $label: only $readb read for $reqs requests of a $fsize-byte file (short bodies?)"
    WRK_RPS=$(fmt "$rps" 0)
    WRK_P99="$(fmt "$(to_ms "$p99")" 2) ms"
    WRK_CPU=$(awk -v t="$W_SRV" -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN { print (t / hz) * 1e6 / r }')
    echo "  wrk $label: $readb read, $rps req/s, p99 $p99${errs:+; socket errors: $errs}" >>"$RES/details"
    log "$CUR_NAME: $label: $WRK_RPS req/s, p99 $WRK_P99, $(fmt "$WRK_CPU" 1) µs CPU/req"
}

# one server, start to stop; runs in a subshell so a failure ends only this row
run_one() {
    local run=$1 port
    CUR_NAME=$run
    RES=$WORK/results/$run
    mkdir -p "$RES"
    : >"$RES/notes"
    : >"$RES/details"
    SRV_PID=
    trap 'stop_server' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    port=$(free_port)
    if [[ $run == nginx ]]; then
        CUR_KIND=nginx
        start_nginx "$port"
        local label="nginx" path="sendfile on, tcp_nopush on"
    else
        CUR_KIND=ferry
        local sp=${run#ferry:}
        ADMIN_PORT=$(free_port)
        [[ $ADMIN_PORT != "$port" ]] || ADMIN_PORT=$(free_port)
        start_ferry "$sp" "$port" "$ADMIN_PORT"
        local label="ferry" path=$sp
    fi
    local base="http://127.0.0.1:$port/static" load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "load average at start: $load; $QUIET_INFO" >>"$RES/details"
    ((QUIET_BUSY < 15)) || note "$CUR_NAME: started on a busy machine ($QUIET_INFO)"

    verify_content "$base"
    scrape start
    bench_download "$base/big.bin"
    scrape big
    bench_wrk 4k "$base/f4k.bin" 4096
    local r4=$WRK_RPS p4=$WRK_P99 c4=$WRK_CPU
    scrape 4k
    bench_wrk 64k "$base/f64k.bin" 65536
    local r64=$WRK_RPS p64=$WRK_P99 c64=$WRK_CPU
    scrape 64k

    local zc="n/a"
    if [[ $CUR_KIND == ferry ]]; then
        zc="$(zc_share start big) / $(zc_share big 4k) / $(zc_share 4k 64k)"
        {
            echo "ferry /metrics at end of run:"
            grep -E '^(ferry_zero_copy_bytes_total|ferry_body_bytes_total)[{ ]' "$RES/metrics.64k" | sed 's/^/    /' || echo "    (ferry_zero_copy_bytes_total / ferry_body_bytes_total not found)"
        } >>"$RES/details"
        log "$CUR_NAME: metrics at end of run:"
        grep -E '^(ferry_zero_copy_bytes_total|ferry_body_bytes_total)[{ ]' "$RES/metrics.64k" >&2 || log "  (metrics not found)"
        [[ $zc != *"no metric"* ]] || note "$CUR_NAME: ferry_zero_copy_bytes_total / ferry_body_bytes_total missing from /metrics"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$path" "$(fmt "$DL_MIBS" 0)" "$(fmt "$DL_CPU" 3)" \
        "$r4" "$p4" "$(fmt "$c4" 1)" "$r64" "$p64" "$(fmt "$c64" 1)" "$zc" >"$RES/row"

    stop_server
    trap - EXIT
    if [[ $CUR_KIND == nginx ]] && grep -qE '\[(alert|crit|emerg)\]' "$SRV_LOG" 2>/dev/null; then
        note "nginx error log has alerts: $(grep -E '\[(alert|crit|emerg)\]' "$SRV_LOG" | head -3 | tr '\n' ' ')"
    fi
    local rc; rc=$(cat "$RES/exit_status")
    [[ $rc == 0 ]] || note "$CUR_NAME: exit status $rc after SIGTERM"
    if [[ $CUR_KIND == ferry ]] && grep -qi 'panic' "$SRV_LOG"; then
        note "$CUR_NAME: its log mentions a panic: $(grep -i 'panic' "$SRV_LOG" | head -2 | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------- main
ensure_tools
make_workdir
if ((NEED_FERRY)); then
    log "building ferry (cargo build --release in $ROOT)"
    (cd "$ROOT" && bg_wait timeout 1800 cargo build --release >&2) || die "cargo build --release failed"
    [[ -x $FERRY_BIN ]] || die "no binary at $FERRY_BIN after build"
fi
FERRY_VERSION="(not run)"
if ((NEED_FERRY)); then
    FERRY_VERSION=$(timeout 10 "$FERRY_BIN" --version 2>&1 | head -1 || true)
    if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
        [[ -z $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || rev="$rev + uncommitted changes"
        FERRY_VERSION="$FERRY_VERSION (git $rev)"
    else
        FERRY_VERSION="$FERRY_VERSION (no git commit yet)"
    fi
fi
NGINX_VERSION=$(nginx -v 2>&1 | head -1)

make_files
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

FAILED=()
for run in "${RUNS[@]}"; do
    log "=== $run ==="
    QUIET_INFO="quiet wait disabled"
    QUIET_BUSY=0
    ((MAX_WAIT == 0)) || wait_quiet
    (
        set -e
        run_one "$run"
    ) &
    RUN_PID=$!
    rc=0
    wait "$RUN_PID" || rc=$?
    RUN_PID=
    ((rc != 130 && rc != 143)) || { log "interrupted"; exit "$rc"; }
    if ((rc != 0)); then
        FAILED+=("$run")
        log "$run FAILED (exit $rc) -- continuing with the next server"
        mkdir -p "$WORK/results/$run"
        echo "FAILED: see the notes below" >"$WORK/results/$run/failed"
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
SECTION=$WORK/section.md
{
    echo
    echo "## $(date -u +%F)$( ((QUICK)) && echo " (quick)")"
    echo
    echo "- machine: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "- $NGINX_VERSION; ferry: $FERRY_VERSION; $(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }'); $(curl --version | head -1 | awk '{ print $1 " " $2 }')"
    echo "- command: \`$CMDLINE\`"
    echo "- load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
    echo "- 1 GiB: $N_DOWNLOADS x curl, median MiB/s; wrk: -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s --latency. CPU = utime+stime of the server process(es) from /proc over the measured window."
    echo "- client (curl / wrk) runs on the same $(nproc) cores as the server, over loopback, page cache warm."
    echo
    echo "| server | path | 1 GiB MiB/s | CPU s/GiB | 4 KiB req/s | 4 KiB p99 | 4 KiB CPU µs/req | 64 KiB req/s | 64 KiB p99 | 64 KiB CPU µs/req | zero-copy share of body bytes (1 GiB / 4 KiB / 64 KiB) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for run in "${RUNS[@]}"; do
        r=$WORK/results/$run
        if [[ -f $r/row ]]; then
            cat "$r/row"
        else
            if [[ $run == nginx ]]; then n=nginx p="sendfile on, tcp_nopush on"; else n=ferry p=${run#ferry:}; fi
            echo "| $n | $p | FAILED | | | | | | | | |"
        fi
    done
    notes=$(cat "$WORK"/results/*/notes 2>/dev/null || true)
    if [[ -n $notes || ${#FAILED[@]} -gt 0 ]]; then
        echo
        echo "Notes:"
        ((${#FAILED[@]} == 0)) || echo "- FAILED runs: ${FAILED[*]} (cause: the FATAL note below)"
        [[ -z $notes ]] || echo "$notes"
    fi
    echo
    echo "<details><summary>raw numbers</summary>"
    echo
    echo '```'
    for run in "${RUNS[@]}"; do
        r=$WORK/results/$run
        [[ -s $r/details ]] || continue
        echo "[$run]"
        cat "$r/details"
    done
    echo '```'
    echo
    echo "</details>"
} >"$SECTION"

cat "$SECTION"
if ((RECORD)); then
    # shellcheck disable=SC2016
    [[ -f $RESULTS_MD ]] || printf '# ferry benchmark results\n\nAppended by `bench/run.sh`; see bench/README.md for how to read the columns.\n' >"$RESULTS_MD"
    cat "$SECTION" >>"$RESULTS_MD"
    log "appended to $RESULTS_MD"
fi
((${#FAILED[@]} == 0)) || die "failed runs: ${FAILED[*]}"
