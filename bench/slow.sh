#!/usr/bin/env bash
# Slow clients in front of an app: ferry's spool against nginx's buffering (issue 15).
#
#   bench/slow.sh [--rounds N] [--readers N] [--reader-mib MIB] [--uploads M] [--upload-kib KIB]
#                 [--chunk-kib KIB] [--interval-ms MS] [--big N] [--big-mib MIB]
#                 [--stall-timeout S] [--servers LIST] [--max-wait S] [--no-record]
#
#   slow readers   N (20) clients GET a MIB (64) MiB body with a Content-Length from the app,
#                  read 64 KiB, then stop reading until the app's log shows all N body writes
#                  returned (at most --stall-timeout, 30 s), then read the rest at full speed
#   slow uploads   M (50) clients POST a KIB (1024) KiB body, CHUNK (64) KiB every MS (100) ms
#   spool CPU      N (8) clients GET a MIB (256) MiB body: once reading at once (relay
#                  baseline), once stalling as above (the whole body goes through the spool)
#
# Each round runs ferry and nginx one after the other (the order alternates from round to
# round), each with a fresh app (bench/slow_app.py) and the same files; --rounds (default 3).
# --servers ferry,nginx,nginx-tuned adds nginx with larger proxy buffers (proxy_buffer_size 64k;
# proxy_buffers 16 64k; proxy_busy_buffers_size 128k; proxy_temp_file_write_size 256k).
# ferry: the release build of this tree, [upstream] to the app, [spool] dir in the work dir.
# nginx: 2 workers, proxy_buffering on, proxy_max_temp_file_size 1024m, proxy_request_buffering
# on, client_body_buffer_size 16k, client_max_body_size 100m, its temp paths in the work dir,
# upstream keepalive 32. The work dir is /var/tmp/ferry-slow.XXXXXX (a disk filesystem; both
# servers spool there). Server CPU: utime+stime of the server's processes from /proc around
# each phase. Disk writes: write_bytes of the server's processes from /proc/PID/io.
# The results section goes to stdout and, unless --no-record, is appended to bench/RESULTS.md.
# See bench/README.md ("Slow clients: bench/slow.sh").
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/slow.sh${*:+ $*}"
ROUNDS=3 READERS=20 READER_MIB=64 UPLOADS=50 UPLOAD_KIB=1024 CHUNK_KIB=64 INTERVAL_MS=100
BIG=8 BIG_MIB=256 STALL_TIMEOUT=30 MAX_WAIT=120 RECORD=1 SERVERS=ferry,nginx
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
num() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a whole number"; }
while (($#)); do
    case $1 in
        --rounds) num "$1" "${2-}"; ROUNDS=$2; shift ;;
        --readers) num "$1" "${2-}"; READERS=$2; shift ;;
        --reader-mib) num "$1" "${2-}"; READER_MIB=$2; shift ;;
        --uploads) num "$1" "${2-}"; UPLOADS=$2; shift ;;
        --upload-kib) num "$1" "${2-}"; UPLOAD_KIB=$2; shift ;;
        --chunk-kib) num "$1" "${2-}"; CHUNK_KIB=$2; shift ;;
        --interval-ms) num "$1" "${2-}"; INTERVAL_MS=$2; shift ;;
        --big) num "$1" "${2-}"; BIG=$2; shift ;;
        --big-mib) num "$1" "${2-}"; BIG_MIB=$2; shift ;;
        --stall-timeout) num "$1" "${2-}"; STALL_TIMEOUT=$2; shift ;;
        --max-wait) num "$1" "${2-}"; MAX_WAIT=$2; shift ;;
        --servers) [[ ${2-} =~ ^(ferry|nginx|nginx-tuned)(,(ferry|nginx|nginx-tuned))*$ ]] ||
            die "--servers: a comma-separated list of ferry, nginx, nginx-tuned"; SERVERS=$2; shift ;;
        --no-record) RECORD=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
((ROUNDS >= 1 && READERS >= 1 && UPLOADS >= 1 && BIG >= 1 && CHUNK_KIB >= 1)) || die "counts must be at least 1"
PATH=$PATH:/usr/sbin:/sbin
for tool in nginx curl python3 openssl sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
PYTHON=$(command -v python3)
CLK_TCK=$(getconf CLK_TCK)
MIB=$((1024 * 1024))
FERRY_BIN=$ROOT/target/release/ferry

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /var/tmp/ferry-slow.XXXXXX)
chmod 755 "$WORK" # nginx's workers (user nobody) create their temp files under it
SRV_PID='' APP_PID=''
stop_pid() { # PID: SIGTERM, wait up to 15 s, then SIGKILL
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    set +e
    [[ -z $SRV_PID ]] || stop_pid "$SRV_PID"
    [[ -z $APP_PID ]] || stop_pid "$APP_PID"
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# ---------------------------------------------------------------- files
mkdir -p "$WORK/files" "$WORK/spool/ferry" "$WORK/spool/nginx-proxy" "$WORK/spool/nginx-body" \
    "$WORK/spool/nginx-other" "$WORK/results"
chmod 755 "$WORK/spool"
gen() { # NAME MIB: pseudo-random, non-repeating (AES-CTR keystream)
    { openssl enc -aes-128-ctr -nosalt -pass "pass:ferry-slow-$1" -pbkdf2 -in /dev/zero 2>/dev/null || true; } |
        head -c $(($2 * MIB)) >"$WORK/files/$1.bin"
    [[ $(stat -c %s "$WORK/files/$1.bin") -eq $(($2 * MIB)) ]] || die "generating $1.bin failed"
}
log "work dir $WORK: generating ${READER_MIB} MiB and ${BIG_MIB} MiB files"
gen r "$READER_MIB"
gen b "$BIG_MIB"
R_SHA=$(sha256sum "$WORK/files/r.bin" | cut -d' ' -f1)
B_SHA=$(sha256sum "$WORK/files/b.bin" | cut -d' ' -f1)
sync
FS=$(df -T "$WORK/spool" | awk 'NR == 2 { print $2 " on " $1 " (mounted on " $7 ")" }')

log "building ferry (cargo build --release)"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
cp "$FERRY_BIN" "$WORK/ferry" # a concurrent rebuild cannot change the binary under test
FERRY_VERSION="$("$WORK/ferry" --version 2>/dev/null || echo ferry) (git $(git -C "$ROOT" rev-parse --short HEAD))"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- /proc
proc_ticks() { # PID -> "USER SYS" (threads included, plus reaped children)
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}
srv_pids() { echo "$SRV_PID $(pgrep -P "$SRV_PID" | tr '\n' ' ' || true)"; }
srv_ticks() {
    local u=0 s=0 pu ps p
    for p in $(srv_pids); do read -r pu ps < <(proc_ticks "$p"); u=$((u + pu)) s=$((s + ps)); done
    echo "$u $s"
}
srv_io() { # write_bytes cancelled_write_bytes of the server's processes
    local w=0 c=0 p a b
    for p in $(srv_pids); do
        read -r a b < <(awk '/^write_bytes/ { w = $2 } /^cancelled_write_bytes/ { c = $2 } END { printf "%d %d\n", w, c }' "/proc/$p/io" 2>/dev/null || echo "0 0")
        w=$((w + a)) c=$((c + b))
    done
    echo "$w $c"
}
machine_ticks() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9; exit }' /proc/stat; }
ferry_metrics() { # the spool and zero-copy counters, summed over labels: "name{label} value" lines
    [[ $SERVER == ferry ]] || return 0
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        grep -E '^ferry_(spool_bytes_total|spool_skipped_total|zero_copy_bytes_total|body_bytes_total|upstream_requests_total)' || true
}
wait_quiet() {
    local start=$SECONDS b0 t0 b1 t1 busy
    while :; do
        read -r b0 t0 < <(machine_ticks); sleep 2; read -r b1 t1 < <(machine_ticks)
        busy=$(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
        ((busy >= 15 && SECONDS - start < MAX_WAIT)) || break
        log "machine ${busy}% busy, waiting (up to ${MAX_WAIT}s)"
        sleep 3
    done
    QUIET="${busy}% busy before start (waited $((SECONDS - start)) s)"
}

# ---------------------------------------------------------------- servers
start_app() { # RUN_DIR
    local out=$1/app.out i
    : >"$1/app.log"
    "$PYTHON" "$BENCH_DIR/slow_app.py" --log "$1/app.log" --file "r=$WORK/files/r.bin" \
        --file "b=$WORK/files/b.bin" >"$out" 2>"$1/app.err" &
    APP_PID=$!
    for i in $(seq 100); do grep -q '^ready' "$out" 2>/dev/null && break; sleep 0.1; done
    APP_PORT=$(awk '/^port/ { print $2 }' "$out")
    [[ -n $APP_PORT ]] || die "the app did not start: $(cat "$1/app.err")"
}
start_server() { # NAME RUN_DIR
    local run=$2 i code
    PORT=$(free_port)
    if [[ $1 == nginx* ]]; then
        local tuned=""
        [[ $1 != nginx-tuned ]] ||
            tuned="proxy_buffer_size 64k; proxy_buffers 16 64k; proxy_busy_buffers_size 128k; proxy_temp_file_write_size 256k;"
        cat >"$run/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $run/nginx.pid;
error_log $run/nginx-error.log warn;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/spool/nginx-body;
    proxy_temp_path $WORK/spool/nginx-proxy;
    fastcgi_temp_path $WORK/spool/nginx-other; uwsgi_temp_path $WORK/spool/nginx-other; scgi_temp_path $WORK/spool/nginx-other;
    upstream app { server 127.0.0.1:$APP_PORT; keepalive 32; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$PORT;
        client_max_body_size 100m;
        client_body_buffer_size 16k;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_max_temp_file_size 1024m;
            proxy_request_buffering on;
            $tuned
        }
    }
}
EOF
        nginx -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log" >"$run/server.log" 2>&1 &
    else
        ADMIN_PORT=$(free_port)
        cat >"$run/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
access_log = "off"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[upstream]
address = "127.0.0.1:$APP_PORT"
[spool]
dir = "$WORK/spool/ferry"
EOF
        "$WORK/ferry" serve --config "$run/ferry.toml" >"$run/server.log" 2>&1 &
    fi
    SRV_PID=$!
    for i in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nothing" || true)
        [[ $code == 404 ]] && break
        kill -0 "$SRV_PID" 2>/dev/null || die "$1 exited at start: $(tail -5 "$run/server.log")"
        sleep 0.1
    done
    [[ $code == 404 ]] || die "$1 did not answer through to the app (last status $code)"
}

# ---------------------------------------------------------------- one measured phase
phase() { # TAG CLIENT_ARGS...: runs slow_client.py, writes $RUN/TAG.json and $RUN/TAG.cpu
    local tag=$1 su0 ss0 su1 ss1 au0 as0 au1 as1 cu0 cs0 cu1 cs1 b0 t0 b1 t1 w0 c0 w1 c1 e0 e1 me=$BASHPID
    shift
    ferry_metrics >"$RUN/$tag.m0"
    e0=$(grep -c 'buffered to a temporary file' "$RUN/nginx-error.log" 2>/dev/null || true)
    read -r su0 ss0 < <(srv_ticks); read -r au0 as0 < <(proc_ticks "$APP_PID")
    read -r cu0 cs0 < <(proc_ticks "$me"); read -r w0 c0 < <(srv_io); read -r b0 t0 < <(machine_ticks)
    "$PYTHON" "$BENCH_DIR/slow_client.py" "$@" --tag "$tag" --app-log "$RUN/app.log" >"$RUN/$tag.json" ||
        die "$SERVER $tag: the client failed"
    read -r b1 t1 < <(machine_ticks); read -r su1 ss1 < <(srv_ticks); read -r au1 as1 < <(proc_ticks "$APP_PID")
    read -r cu1 cs1 < <(proc_ticks "$me"); read -r w1 c1 < <(srv_io)
    ferry_metrics >"$RUN/$tag.m1"
    e1=$(grep -c 'buffered to a temporary file' "$RUN/nginx-error.log" 2>/dev/null || true)
    kill -0 "$SRV_PID" 2>/dev/null || die "$SERVER died during $tag: $(tail -5 "$RUN/server.log")"
    cat >"$RUN/$tag.cpu" <<EOF
srv_user $((su1 - su0))
srv_sys $((ss1 - ss0))
app $((au1 - au0 + as1 - as0))
client $((cu1 - cu0 + cs1 - cs0))
busy $((b1 - b0))
total $((t1 - t0))
write_bytes $((w1 - w0))
cancelled_write_bytes $((c1 - c0))
nginx_spills $((${e1:-0} - ${e0:-0}))
EOF
    log "  $tag: $(head -c 400 "$RUN/$tag.json")"
}

run_server() { # SERVER ROUND
    SERVER=$1
    RUN=$WORK/results/r$2-$1
    mkdir -p "$RUN"
    sync
    wait_quiet
    echo "$QUIET" >"$RUN/quiet"
    start_app "$RUN"
    start_server "$1" "$RUN"
    log "round $2: $1 on :$PORT (app :$APP_PORT); $QUIET"
    phase readers readers --port "$PORT" --name r --size $((READER_MIB * MIB)) --sha "$R_SHA" --n "$READERS" \
        --stall-timeout "$STALL_TIMEOUT"
    phase uploads uploads --port "$PORT" --n "$UPLOADS" --size $((UPLOAD_KIB * 1024)) --chunk $((CHUNK_KIB * 1024)) \
        --interval "$(awk -v m="$INTERVAL_MS" 'BEGIN { print m / 1000 }')"
    phase relay readers --port "$PORT" --name b --size $((BIG_MIB * MIB)) --sha "$B_SHA" --n "$BIG" --no-stall
    phase spool readers --port "$PORT" --name b --size $((BIG_MIB * MIB)) --sha "$B_SHA" --n "$BIG" \
        --stall-timeout "$STALL_TIMEOUT"
    stop_pid "$SRV_PID"; SRV_PID=
    stop_pid "$APP_PID"; APP_PID=
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
    IFS=',' read -r -a order <<<"$SERVERS"
    if ((round % 2 == 0)); then # every other round in reverse order
        for ((i = 0, j = ${#order[@]} - 1; i < j; i++, j--)); do t=${order[i]} order[i]=${order[j]} order[j]=$t; done
    fi
    for s in "${order[@]}"; do run_server "$s" "$round"; done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
SECTION=$WORK/section.md
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
{
    echo
    echo "## Slow clients: ferry's spool vs nginx's buffering (bench/slow.sh) — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- command: \`$CMDLINE\`; $ROUNDS rounds, the servers one after the other (order reversed every other round), each with a fresh app"
    echo "- machine: $(nproc) cores, $CPU_MODEL, kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); load average before / after: $LOAD0 / $LOAD1"
    echo "- $FERRY_VERSION; $NGINX_VERSION; $("$PYTHON" --version); TCP congestion control $(cat /proc/sys/net/ipv4/tcp_congestion_control); all over loopback, clients and app on the same 2 cores"
    echo "- spool / temp files: both servers in the work dir under /var/tmp, $FS (disk, page cache; not tmpfs)"
    echo "- ferry: \`[upstream] address\` (idle_connections 32), \`[spool] dir\` in the work dir, every other key default (response_buffering and request_buffering on, request_memory 16KiB, max_file_size 1GiB, max_size 4GiB)"
    echo "- nginx: 2 workers, \`proxy_buffering on; proxy_max_temp_file_size 1024m; proxy_request_buffering on; client_body_buffer_size 16k; client_max_body_size 100m;\`, upstream keepalive 32, proxy buffers default (\`proxy_buffer_size 4k; proxy_buffers 8 4k;\` on this 4 KiB-page machine; temp files written 8 KiB at a time), temp paths in the work dir"
    [[ ,$SERVERS, != *,nginx-tuned,* ]] ||
        echo "- nginx-tuned: the same plus \`proxy_buffer_size 64k; proxy_buffers 16 64k; proxy_busy_buffers_size 128k; proxy_temp_file_write_size 256k;\`"
} >"$SECTION"
"$PYTHON" - "$WORK/results" "$ROUNDS" "$CLK_TCK" "$READERS" "$READER_MIB" "$UPLOADS" "$UPLOAD_KIB" "$CHUNK_KIB" \
    "$INTERVAL_MS" "$BIG" "$BIG_MIB" "$STALL_TIMEOUT" "$SERVERS" >>"$SECTION" <<'EOF'
import json, os, re, sys
res, rounds, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
readers, rmib, uploads, ukib, ckib, ims, big, bmib, stall = map(int, sys.argv[4:13])
GiB = 1 << 30

def load(server, r, tag):
    d = os.path.join(res, "r%d-%s" % (r, server))
    j = json.load(open(os.path.join(d, tag + ".json")))
    cpu = dict((l.split()[0], int(l.split()[1])) for l in open(os.path.join(d, tag + ".cpu")))
    def metrics(f):
        m = {}
        p = os.path.join(d, f)
        if os.path.exists(p):
            for l in open(p):
                name, val = l.rsplit(" ", 1)
                m[name] = float(val)
        return m
    m0, m1 = metrics(tag + ".m0"), metrics(tag + ".m1")
    delta = {k: m1[k] - m0.get(k, 0) for k in m1 if m1[k] - m0.get(k, 0)}
    j["cpu"] = cpu
    j["metrics"] = delta
    j["srv_s"] = (cpu["srv_user"] + cpu["srv_sys"]) / tck
    j["quiet"] = open(os.path.join(d, "quiet")).read().strip()
    other = cpu["busy"] - cpu["srv_user"] - cpu["srv_sys"] - cpu["app"] - cpu["client"]
    j["other_pct"] = 100.0 * other / cpu["total"] if cpu["total"] else 0
    return j

def msum(m, prefix, label=None):
    return sum(v for k, v in m.items() if k.startswith(prefix + "{") and (label is None or label in k))

def med(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

def cell(xs, fmt):
    xs = [x for x in xs]
    if any(x is None for x in xs):
        missing = sum(1 for x in xs if x is None)
        xs = [x for x in xs if x is not None]
        if not xs:
            return "n/a"
        return (fmt % med(xs)) + " (%d rounds n/a)" % missing
    lo, hi, m = min(xs), max(xs), med(xs)
    if fmt % lo == fmt % hi:
        return fmt % m
    return "%s [%s–%s]" % (fmt % m, fmt % lo, fmt % hi)

servers = sys.argv[13].split(",")
D = {s: {t: [load(s, r, t) for r in range(1, rounds + 1)] for t in ("readers", "uploads", "relay", "spool")} for s in servers}

def spooled(j, server, direction):
    # ferry: its own counter; nginx: bytes its processes dirtied in files (/proc/PID/io write_bytes)
    if server == "ferry":
        return msum(j["metrics"], "ferry_spool_bytes_total", 'direction="%s"' % direction)
    return j["cpu"]["write_bytes"]

print()
print("Medians over %d rounds, [min–max] when they differ. Server CPU = utime+stime of ferry's process, or nginx's master + 2 workers, from /proc over the phase (10 ms ticks). *Spooled* is ferry's `ferry_spool_bytes_total{direction}`; for nginx it is `write_bytes` of its processes in /proc/PID/io (page-cache bytes it dirtied in its temp files). ferry's own write_bytes (raw numbers) equal its counter in the readers, uploads and fast phases, but in the 8 × 256 MiB stall phase they fall short of it in most rounds, and nginx's fall short of the ~2.11 GB it must have buffered in some rounds: there write_bytes undercounts (cause not found), so nginx's spooled figure is a lower bound and its spool cost per GiB spooled an upper bound." % rounds)
print()
print("**1. Slow readers**: %d clients at once GET a %d MiB body (Content-Length) from the app, read 64 KiB, then stop reading until the app's log shows all %d body writes returned (at most %d s), then read the rest at full speed." % (readers, rmib, readers, stall))
print()
print("| server | app writes still in progress at 1 s | all app writes done after | clients with every byte (length + SHA-256) | server CPU s | CPU ms / request | CPU s / GiB delivered | spooled GiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    js = D[s]["readers"]
    print("| %s | %s of %d | %s | %s | %s | %s | %s | %s |" % (
        s,
        cell([j["held_1s"] for j in js], "%d"), readers,
        cell([j["app_done_s"] for j in js], "%.2f s"),
        cell([j["ok"] for j in js], "%d") + " of %d" % readers,
        cell([j["srv_s"] for j in js], "%.2f"),
        cell([j["srv_s"] * 1e3 / readers for j in js], "%.0f"),
        cell([j["srv_s"] / (j["bytes"] / GiB) if j["bytes"] else None for j in js], "%.3f"),
        cell([spooled(j, s, "response") / GiB for j in js], "%.2f"),
    ))
print()
print("**2. Slow uploads**: %d clients at once POST a %d KiB body, %d KiB every %d ms (the last chunk about %.1f s after the head); the app answers with the SHA-256 of what it got. *Begun early*: the app had the request head before the client started to send its last chunk." % (uploads, ukib, ckib, ims, (ukib // ckib - 1) * ims / 1000))
print()
print("| server | app requests begun early | app connections opened before the first body was complete | app head after the client began its last chunk, median (min) | app time from head to whole body, median (max) | bodies intact at the app | server CPU ms / request | CPU s / GiB uploaded | spooled GiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    js = D[s]["uploads"]
    print("| %s | %s of %d | %s | %s ms (%s) | %s ms (%s) | %s of %d | %s | %s | %s |" % (
        s,
        cell([j["early_requests"] for j in js], "%d"), uploads,
        cell([j["conns_opened_before_first_body_complete"] for j in js], "%d"),
        cell([j["head_after_last_chunk_ms_median"] for j in js], "%.1f"),
        cell([j["head_after_last_chunk_ms_min"] for j in js], "%.1f"),
        cell([j["app_recv_ms_median"] for j in js], "%.1f"),
        cell([j["app_recv_ms_max"] for j in js], "%.0f"),
        cell([j["ok"] for j in js], "%d"), uploads,
        cell([j["srv_s"] * 1e3 / uploads for j in js], "%.1f"),
        cell([j["srv_s"] / (j["bytes"] / GiB) if j["bytes"] else None for j in js], "%.2f"),
        cell([spooled(j, s, "request") / GiB for j in js], "%.3f"),
    ))
print()
print("**3. Spool CPU head to head**: %d clients at once GET a %d MiB body from the app. *fast*: they read at once at full speed (Python clients hashing on the same 2 cores, so a server still spools a part when they fall behind); *stall + spool*: they read 64 KiB, stop until the app's log shows all %d writes returned, then read at full speed, so nearly the whole body goes app → spool file → client. CPU per GiB is per GiB delivered; **spool cost per GiB spooled** = (server CPU of stall + spool − server CPU of fast) ÷ (GiB spooled in stall + spool − GiB spooled in fast), per round: the extra CPU of writing a GiB into the spool and sending it from there instead of relaying it." % (big, bmib, big))
print()
print("| server | fast CPU s / GiB (spooled GiB) | stall + spool CPU s / GiB (spooled GiB) | spool cost CPU s / GiB spooled | all app writes done after (stall) | clients with every byte | body paths (ferry counters, stall + spool) |")
print("|---|---:|---:|---:|---:|---:|---|")
for s in servers:
    rl, sp = D[s]["relay"], D[s]["spool"]
    per = lambda j: j["srv_s"] / (j["bytes"] / GiB) if j["bytes"] else None
    paths = "n/a (no counters)"
    if s == "ferry":
        m = sp[len(sp) // 2]["metrics"]
        body = {re.search(r'path="([^"]+)"', k).group(1): v for k, v in m.items() if k.startswith("ferry_body_bytes_total{")}
        tot = sum(body.values())
        zc = msum(m, "ferry_zero_copy_bytes_total")
        paths = ", ".join("%s %.0f%%" % (k, 100 * v / tot) for k, v in sorted(body.items())) + "; zero-copy %.0f%%" % (100 * zc / tot if tot else 0)
    def marginal(a, b):
        ds = (spooled(b, s, "response") - spooled(a, s, "response")) / GiB
        return (b["srv_s"] - a["srv_s"]) / ds if ds > 0.1 else None
    print("| %s | %s (%s) | %s (%s) | %s | %s | %s of %d | %s |" % (
        s,
        cell([per(j) for j in rl], "%.3f"),
        cell([spooled(j, s, "response") / GiB for j in rl], "%.2f"),
        cell([per(j) for j in sp], "%.3f"),
        cell([spooled(j, s, "response") / GiB for j in sp], "%.2f"),
        cell([marginal(a, b) for a, b in zip(rl, sp)], "%.3f"),
        cell([j["app_done_s"] for j in sp], "%.2f s"),
        cell([j["ok"] + a["ok"] for j, a in zip(sp, rl)], "%d"), 2 * big,
        paths,
    ))
print()
print("<details><summary>raw numbers (per round and server)</summary>")
print()
print("```")
for r in range(1, rounds + 1):
    for s in servers:
        for t in ("readers", "uploads", "relay", "spool"):
            j = D[s][t][r - 1]
            c = j["cpu"]
            extra = {k: j[k] for k in ("held_1s", "held_at_release", "release_reason", "release_s", "app_done_s", "clients_done_s",
                                       "early_requests", "conns_opened_before_first_body_complete", "first_body_complete_s", "head_after_last_chunk_ms_median",
                                       "last_body_complete_s", "app_recv_ms_median", "ok", "bytes", "errors") if k in j}
            for k, v in list(extra.items()):
                if isinstance(v, float):
                    extra[k] = round(v, 3)
            print("r%d %s %s: server user=%d sys=%d ticks, app=%d, client=%d, other processes %.0f%% of the machine; write_bytes=%d cancelled=%d nginx temp-file warnings=%d; %s" % (
                r, s, t, c["srv_user"], c["srv_sys"], c["app"], c["client"], j["other_pct"], c["write_bytes"], c["cancelled_write_bytes"], c["nginx_spills"],
                json.dumps(extra)))
            if j["metrics"]:
                for k in sorted(j["metrics"]):
                    print("    Δ %s %d" % (k, j["metrics"][k]))
        print("r%d %s before start: %s" % (r, s, D[s]["readers"][r - 1]["quiet"]))
print("```")
print()
print("</details>")
EOF
cat "$SECTION"
if ((RECORD)); then
    cat "$SECTION" >>"$BENCH_DIR/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
