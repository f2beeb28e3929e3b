#!/usr/bin/env bash
# The directio rows (`bench/run.sh --only directio` runs this script; it can also run alone):
# page-cache pollution measured. A hot working set of 4 KiB files is served under wrk while a
# 2 GiB file is downloaded over and over from the same server, once with directio off and once
# on, for ferry ([io] directio_threshold) and for nginx (`directio 1g; aio threads;`).
#
# The machine has far more RAM than 2 GiB, so unconstrained the big file would simply sit in
# the page cache next to the hot set and nothing would show. The server therefore runs in a
# memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max) sized a little above the hot set:
# page cache is charged to the cgroup of the process that reads it in, so every page of the
# 2 GiB file that goes through the cache pushes against the hot set, as on a real box whose
# memory is mostly taken by the hot set. Page cache is dropped (echo 3 > drop_caches) before
# every server.
#
#   bench/directio.sh [--quick] [--no-record] [--mem-limit MiB] [--small-count N]
#
#   --quick          wrk runs of 10 s instead of 30 s
#   --no-record      print the results section, do not append it to bench/RESULTS.md
#   --mem-limit MiB  the servers' memory cgroup limit (default 512; 0: no limit, the whole
#                    machine's memory, where the 2 GiB file fits beside the hot set)
#   --small-count N  4 KiB files in the hot set (default 65536, i.e. 256 MiB)
#
# Needs root (cgroups, drop_caches) and about 2.3 GiB under /var/tmp (a disk filesystem: a
# tmpfs work dir would make the page cache the file itself). Installs nginx, wrk, curl and
# util-linux (fincore) with apt-get when missing; builds ferry with cargo build --release.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/directio.sh${*:+ $*}"

QUICK=0 RECORD=1 MEM_LIMIT_MIB=512 SMALL_COUNT=65536
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --no-record) RECORD=0 ;;
        --mem-limit) MEM_LIMIT_MIB=${2:?--mem-limit needs MiB}; shift ;;
        --small-count) SMALL_COUNT=${2:?--small-count needs a number}; shift ;;
        --only) [[ ${2:-} == directio ]] || { echo "directio.sh: only --only directio" >&2; exit 64; }; shift ;;
        --max-wait | --netns-cc) shift ;; # run.sh options that do not apply here
        --netns | --netns-plain | --loopback) ;;
        -h | --help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "directio.sh: unknown argument: $1" >&2; exit 64 ;;
    esac
    shift
done
if ((QUICK)); then WRK_SECS=10 WARM_SECS=5; else WRK_SECS=30 WARM_SECS=10; fi
BIG_SIZE=$((2 * 1024 * 1024 * 1024))
WRK_THREADS=2 WRK_CONNS=50
FERRY_BIN=$ROOT/target/release/ferry
RESULTS_MD=$BENCH_DIR/RESULTS.md
CG_NAME=ferry-bench-directio

log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

((EUID == 0)) || die "run as root: the servers run in a memory cgroup and page cache is dropped"
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v fincore >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
nginx -V 2>&1 | grep -q -- --with-threads || die "this nginx lacks --with-threads (aio threads)"

# ---------------------------------------------------------------- cgroup (v1 or v2)
if [[ -d /sys/fs/cgroup/memory && -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
    CG=/sys/fs/cgroup/memory/$CG_NAME LIMIT_FILE=memory.limit_in_bytes CG_VERSION=v1
elif [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    CG=/sys/fs/cgroup/$CG_NAME LIMIT_FILE=memory.max CG_VERSION=v2
else
    die "no memory cgroup controller to limit the servers' page cache"
fi
cg_make() {
    cg_remove
    mkdir "$CG"
    if ((MEM_LIMIT_MIB > 0)); then
        echo $((MEM_LIMIT_MIB * 1024 * 1024)) >"$CG/$LIMIT_FILE"
    fi
}
cg_remove() {
    [[ -d $CG ]] || return 0
    local p
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$CG/cgroup.procs"
    [[ $CG_VERSION == v2 ]] || echo 0 >"$CG/memory.force_empty" 2>/dev/null || true
    rmdir "$CG" 2>/dev/null || true
}
# page cache charged to the servers' cgroup (bytes)
cg_cache() {
    if [[ $CG_VERSION == v1 ]]; then awk '$1 == "cache" { print $2 }' "$CG/memory.stat"; else awk '$1 == "file" { print $2 }' "$CG/memory.stat"; fi
}
# CPU ticks (user + system) of every process in the cgroup
cg_ticks() {
    local p t=0 s
    while read -r p; do
        s=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + s))
    done <"$CG/cgroup.procs"
    echo "$t"
}

# ---------------------------------------------------------------- work dir
WORK=$(mktemp -d /var/tmp/ferry-bench-dio.XXXXXX)
SRV_PID='' DL_PID=''
cleanup() {
    [[ -z $DL_PID ]] || kill "$DL_PID" 2>/dev/null || true
    [[ -z $SRV_PID ]] || kill "$SRV_PID" 2>/dev/null || true
    cg_remove
    rm -rf "$WORK"
}
trap cleanup EXIT
[[ $(stat -f -c %T "$WORK") != tmpfs ]] || die "$WORK is on tmpfs; directio needs a disk filesystem"

log "building ferry (release)"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"

log "writing $SMALL_COUNT 4 KiB files and a 2 GiB file under $WORK"
mkdir -p "$WORK/files/small" "$WORK/files/big"
python3 - "$WORK/files/small" "$SMALL_COUNT" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/{i}.bin", "wb") as f:
        f.write(os.urandom(4096))
EOF
head -c "$BIG_SIZE" /dev/urandom >"$WORK/files/big/big.bin"
sync
cat >"$WORK/random.lua" <<EOF
-- a uniformly random file of the hot set per request
local n = $SMALL_COUNT
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
request = function()
    return wrk.format("GET", "/s/" .. math.random(0, n - 1) .. ".bin")
end
EOF

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- servers
start_ferry() { # port directio(0|1)
    local port=$1 threshold=0 admin
    ((!$2)) || threshold=1GiB
    admin=$(free_port)
    cat >"$WORK/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
access_log = "off"
[admin]
listen = "127.0.0.1:$admin"
[io]
directio_threshold = "$threshold"
[[location]]
prefix = "/s/"
root = "$WORK/files/small"
[[location]]
prefix = "/b/"
root = "$WORK/files/big"
EOF
    ADMIN_URL=http://127.0.0.1:$admin/metrics
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
        "$FERRY_BIN" serve --config "$WORK/ferry.toml" >"$WORK/server.log" 2>&1 &
    SRV_PID=$!
}

start_nginx() { # port directio(0|1)
    local port=$1 dio=""
    # nginx reads directio files into its output buffers (2 x 32k by default): two of 2m, as
    # ferry's two reads ahead of io.chunk (2 MiB) each
    ((!$2)) || dio="directio 1g; directio_alignment 4096; aio threads; output_buffers 2 2m;"
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$port;
        location /s/ { alias $WORK/files/small/; }
        location /b/ { alias $WORK/files/big/; $dio }
    }
}
EOF
    ADMIN_URL=
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
        nginx -c "$WORK/nginx/nginx.conf" >"$WORK/server.log" 2>&1 &
    SRV_PID=$!
}

wait_port() {
    local _
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/s/0.bin" && return 0
        sleep 0.1
    done
    cat "$WORK/server.log" >&2
    die "server on :$1 did not answer"
}

# wrk over the hot set for $1 seconds: "req/s p99"
run_wrk() {
    local out
    out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$1"s --latency -s "$WORK/random.lua" "http://127.0.0.1:$PORT")
    echo "$out" >>"$WORK/wrk.log"
    grep -q 'Non-2xx' <<<"$out" && die "wrk saw non-2xx responses"
    awk '/Requests\/sec/ { r = $2 } $1 == "99%" { p = $2 } END { print r, p }' <<<"$out"
}

# pages of a sample of the hot set in the page cache, in percent
hot_resident() {
    local sample
    sample=$(seq 0 $((SMALL_COUNT / 2000 > 0 ? SMALL_COUNT / 2000 : 1)) $((SMALL_COUNT - 1)) | sed "s|.*|$WORK/files/small/&.bin|")
    # shellcheck disable=SC2086
    fincore -nb -o RES,SIZE $sample | awk '{ r += $1; s += $2 } END { printf "%.0f%%", s ? 100 * r / s : 0 }'
}

ROWS=()
DROP_INFO=
run_server() { # label kind directio
    local label=$1 kind=$2 dio=$3 alone loaded t0 t1 dls bytes0 bytes1 path=""
    log "== $label"
    cg_make
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then DROP_INFO="dropped before every server (echo 3 > /proc/sys/vm/drop_caches)"; else DROP_INFO="could not be dropped"; fi
    PORT=$(free_port)
    "start_$kind" "$PORT" "$dio"
    wait_port "$PORT"
    run_wrk "$WARM_SECS" >/dev/null # fills the hot set into the cgroup's page cache
    alone=$(run_wrk "$WRK_SECS")
    log "alone: $alone"
    [[ -z $ADMIN_URL ]] || bytes0=$(curl -s "$ADMIN_URL" | awk -F'[{}" ]+' '/^ferry_body_bytes_total/ { print $3 "=" $NF }' | sort | tr '\n' ' ')
    : >"$WORK/downloads"
    # back-to-back downloads for as long as wrk runs; the last one is cut off at the end
    (
        end=$((SECONDS + WRK_SECS))
        while ((SECONDS < end)); do
            curl -s -o /dev/null --max-time $((end - SECONDS)) -w '%{size_download}\n' \
                "http://127.0.0.1:$PORT/b/big.bin" >>"$WORK/downloads" || true
        done
    ) &
    DL_PID=$!
    t0=$(cg_ticks)
    loaded=$(run_wrk "$WRK_SECS")
    t1=$(cg_ticks)
    wait "$DL_PID" 2>/dev/null || true
    DL_PID=
    log "with downloads: $loaded"
    dls=$(awk -v big="$BIG_SIZE" -v secs="$WRK_SECS" '$1 == big { n++ } { s += $1 } END { printf "%.0f MiB/s (%d whole)", s / secs / 1048576, n }' "$WORK/downloads")
    if [[ -n $ADMIN_URL ]]; then
        bytes1=$(curl -s "$ADMIN_URL" | awk -F'[{}" ]+' '/^ferry_body_bytes_total/ { print $3 "=" $NF }' | sort | tr '\n' ' ')
        path=$(python3 -c 'import sys
a = dict(kv.split("=") for kv in sys.argv[1].split())
b = dict(kv.split("=") for kv in sys.argv[2].split())
print(", ".join(f"{k} {(float(b[k]) - float(a.get(k, 0))) / 2**30:.1f} GiB" for k in sorted(b) if float(b[k]) > float(a.get(k, 0))))' "$bytes0" "$bytes1")
    fi
    local cache_mib resident
    cache_mib=$(($(cg_cache) / 1048576))
    resident=$(hot_resident)
    kill "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
    cg_remove
    # shellcheck disable=SC2086
    set -- $alone $loaded
    ROWS+=("| $label | $1 | $2 | $3 | $4 | $dls | $(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$WRK_SECS" 'BEGIN { printf "%.2f", t / hz / s }') | $resident | $cache_mib | ${path:-n/a} |")
}

run_server "ferry, directio off" ferry 0
run_server "ferry, directio_threshold = \"1GiB\"" ferry 1
run_server "nginx, sendfile on" nginx 0
run_server "nginx, directio 1g; aio threads; output_buffers 2 2m;" nginx 1

SECTION=$WORK/section.md
{
    echo
    echo "## directio: a 4 KiB hot set under wrk while a 2 GiB file downloads — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- command: \`$CMDLINE\` (commit $(cd "$ROOT" && git rev-parse --short HEAD)); $(nproc) cores shared with other work, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), $(stat -f -c %T "$WORK") work dir on $(df --output=source "$WORK" | tail -1)"
    echo "- each server alone in a memory cgroup ($CG_VERSION) limited to $( ((MEM_LIMIT_MIB > 0)) && echo "$MEM_LIMIT_MIB MiB" || echo "nothing (no limit)"); hot set $SMALL_COUNT files of 4 KiB ($((SMALL_COUNT * 4 / 1024)) MiB), wrk -t$WRK_THREADS -c$WRK_CONNS, a random file per request, $WARM_SECS s warm-up then $WRK_SECS s alone and $WRK_SECS s while curl downloads /b/big.bin (2 GiB) back to back on loopback"
    echo "- page cache: $DROP_INFO"
    echo "- download rate: bytes curl received from /b/big.bin during the loaded run over its length (whole = downloads completed); CPU: user+system of the server's processes during the loaded run, in cores; hot set cached: fincore over a sample of the 4 KiB files after the loaded run; cgroup cache: page cache charged to the server's cgroup then"
    echo
    echo "| server | alone req/s | alone p99 | with downloads req/s | with downloads p99 | 2 GiB download rate | server CPU (cores) | hot set cached | cgroup cache MiB | ferry body bytes by path |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$SECTION"
cat "$SECTION"
((RECORD == 0)) || cat "$SECTION" >>"$RESULTS_MD"
