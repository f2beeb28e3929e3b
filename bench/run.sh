#!/usr/bin/env bash
# ferry benchmark harness: ferry vs nginx on the same files, the same app and the same cert.
#   static: ferry (sendfile / splice / buffered) vs nginx (sendfile on)
#   proxy:  1 MiB via X-Accel-Redirect and 1 MiB proxied from bench/app.py
#   tls:    1 GiB over TLS (ferry tls_buffered vs nginx TLS, no kTLS on this kernel)
#   cache:  1 MiB cache hits and 64 MiB fills, ferry [cache] (tee, buffered) vs nginx proxy_cache
#   h2:            HTTP/2 over TLS, 4 KiB (h2load) and a 1 GiB download (bench/h2.sh)
#   tls-keepalive: HTTP/1.1 over TLS keep-alive, 4 KiB (wrk; bench/small_ab.sh --tls)
#   handshake:     new TLS connections, full and resumed, RSA and ECDSA (bench/handshake.sh)
#   small:         plaintext 4 KiB, open-file caches off and on (bench/small_ab.sh)
#   floor:         1 GiB server CPU per GiB: ferry, a bare sendfile(2) loop, nginx (bench/floor.sh)
#   (these five run after the others, each script with its servers' rounds interleaved)
# See bench/README.md for what is measured and how to read the results (kTLS: bench/vm.sh).
#
#   bench/run.sh [--quick] [--only LIST] [--no-record] [--max-wait S] [--netns | --netns-plain | --loopback]
#
#   --quick        1 download of the 1 GiB file instead of 6, wrk runs of 3 s instead of 10 s
#   --only LIST    comma-separated subset of: static, proxy, tls, ferry, sendfile, splice,
#                  buffered, nginx, proxy-ferry, proxy-nginx, tls-ferry, tls-nginx, cache
#                  (ferry = the three ferry static send paths, nginx = nginx static, static =
#                  both, proxy / tls = ferry and nginx rows of that table), h2, tls-keepalive,
#                  handshake, small, floor. Default: everything.
#   --no-record    print the results section to stdout but do not append it to bench/RESULTS.md
#   --max-wait S   before each server, wait up to S seconds (default 120) for the machine to be
#                  quiet (other processes < 15% CPU over 2 s); 0 = do not wait
#   --netns        (default) the static rows' content check and 1 GiB downloads run curl in a
#                  network namespace (ferrybench-client, 10.203.0.2/30) over a veth pair to the
#                  server on 10.203.0.1 (fb0), MTU 65535, TSO off + GRO on + threaded NAPI on both
#                  ends, so the receive path runs in kernel threads, not in the server's context.
#                  wrk, proxy and TLS rows stay on loopback. Deleted on exit.
#   --netns-plain  the same veth pair with veth's default offloads (TSO on, GRO off, no NAPI):
#                  receive then runs in the sender's softirq, as on loopback (for comparison)
#   --netns-cc CC  with --netns/--netns-plain: the servers' TCP congestion control toward the
#                  client, set on the /30 route only (ip route ... congctl CC), e.g. cubic; default:
#                  the host's (net.ipv4.tcp_congestion_control). With bbr and no fq qdisc, TCP paces
#                  internally (an hrtimer per paced skb), a per-skb cost that all send paths pay
#   --loopback     everything over 127.0.0.1, as before --netns existed
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
NET_MODE=netns     # netns | netns-plain | loopback (the static rows' 1 GiB downloads)
NET_MODE_SET=0     # 1 when given on the command line (then a failed netns setup is fatal)
NETNS_CC=          # --netns-cc: congestion control on the veth /30 route (empty: host default)

usage() { sed -n '2,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
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
        --netns) NET_MODE=netns NET_MODE_SET=1 ;;
        --netns-plain) NET_MODE=netns-plain NET_MODE_SET=1 ;;
        --loopback) NET_MODE=loopback NET_MODE_SET=1 ;;
        --netns-cc) [[ $# -ge 2 && $2 =~ ^[a-z0-9_]+$ ]] || die "--netns-cc needs a congestion control name (e.g. cubic)"; NETNS_CC=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[[ -z $NETNS_CC || $NET_MODE != loopback ]] || die "--netns-cc needs --netns or --netns-plain"

# ---------------------------------------------------------------- parameters
if ((QUICK)); then N_DOWNLOADS=1; WRK_SECS=3; else N_DOWNLOADS=6; WRK_SECS=10; fi
WRK_THREADS=2
WRK_CONNS=50       # static rows
PROXY_CONNS=16     # proxy rows
BIG_SIZE=$((1024 * 1024 * 1024))
MIB=$((1024 * 1024))
ACCEL_TO=/protected/f1m.bin
CLK_TCK=$(getconf CLK_TCK)
FERRY_BIN=$ROOT/target/release/ferry
APP_PY=$BENCH_DIR/app.py
RESULTS_MD=$BENCH_DIR/RESULTS.md
# --netns: a private /30 that exists only on the veth pair this script creates (and deletes)
NS=ferrybench-client
VETH_HOST=fb0      # stays in the host namespace, the servers' side
VETH_NS=fb1        # moved into $NS, curl's side
NS_NET=10.203.0.0
NS_SRV_ADDR=10.203.0.1
NS_CLI_ADDR=10.203.0.2
NS_PREFIX=30
NS_MTU=65535       # veth's maximum; with TSO off, one skb still carries up to ~64 KiB (see README)

# runs, in order: "ferry:<send_path>", "nginx" (static files), "proxy:ferry", "proxy:nginx",
# "tls:ferry", "tls:nginx"
RUNS=()
SUITES=()          # h2, tls-keepalive, handshake, small, floor: scripts run after RUNS
IFS=',' read -r -a _only <<<"$ONLY"
for tok in "${_only[@]}"; do
    case $tok in
        all)
            RUNS+=(ferry:sendfile ferry:splice ferry:buffered nginx proxy:ferry proxy:nginx tls:ferry tls:nginx)
            SUITES+=(h2 tls-keepalive handshake small floor)
            ;;
        h2 | tls-keepalive | handshake | small | floor) SUITES+=("$tok") ;;
        static) RUNS+=(ferry:sendfile ferry:splice ferry:buffered nginx) ;;
        ferry) RUNS+=(ferry:sendfile ferry:splice ferry:buffered) ;;
        sendfile | splice | buffered) RUNS+=("ferry:$tok") ;;
        nginx) RUNS+=(nginx) ;;
        proxy) RUNS+=(proxy:ferry proxy:nginx) ;;
        tls) RUNS+=(tls:ferry tls:nginx) ;;
        proxy-ferry | proxy-nginx | tls-ferry | tls-nginx) RUNS+=("${tok%-*}:${tok#*-}") ;;
        directio) ((${#_only[@]} == 1)) || die "--only directio runs alone"; exec "$BENCH_DIR/directio.sh" $( ((QUICK)) && echo --quick) $( ((RECORD)) || echo --no-record) ;; # bench/directio.sh
        cache) RUNS+=(cache:ferry cache:ferry-buffered cache:nginx) ;; # bench/cache.sh
        *) die "--only: unknown server '$tok' (want static, proxy, tls, ferry, sendfile, splice, buffered, nginx, proxy-ferry, proxy-nginx, tls-ferry, tls-nginx, cache, h2, tls-keepalive, handshake, small, floor)" ;;
    esac
done
NEED_FERRY=0 HAVE_STATIC=0 HAVE_PROXY=0 HAVE_TLS=0 HAVE_CACHE=0
((${#SUITES[@]} == 0)) || NEED_FERRY=1
for r in "${RUNS[@]}"; do
    case $r in
        ferry:* | *:ferry) NEED_FERRY=1 ;;
    esac
    case $r in
        proxy:*) HAVE_PROXY=1 ;;
        tls:*) HAVE_TLS=1 ;;
        cache:*) HAVE_CACHE=1 ;;
        *) HAVE_STATIC=1 ;;
    esac
done

# the network mode only concerns the static rows
((HAVE_STATIC)) || NET_MODE=loopback
STATIC_ADDR=127.0.0.1   # where the static rows' servers listen (10.203.0.1 once the veth is up)
NET_ACTIVE=0            # 1 once the namespace and the veth pair are set up and checked
NET_INFO=()             # lines for the results section
NAPI0_PIDS="" NAPI1_PIDS="" KSOFTIRQD_PIDS=""

# the cache rows (cache_* functions, run_cache)
# shellcheck source=bench/cache.sh
source "$BENCH_DIR/cache.sh"

# ---------------------------------------------------------------- cleanup
WORK=
RUN_PID=
NETNS_CREATED=0
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
    ((NETNS_CREATED == 0)) || teardown_netns
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
    command -v openssl >/dev/null || missing+=(openssl)
    # the proxy rows' app (and free_port) need python3
    ((HAVE_PROXY == 0)) || [[ -x /usr/bin/python3 ]] || command -v python3 >/dev/null || missing+=(python3)
    # --netns: ip (iproute2) for the namespace and the veth pair, ethtool for their offloads
    if [[ $NET_MODE != loopback ]]; then
        command -v ip >/dev/null || [[ -x /usr/sbin/ip || -x /sbin/ip || -x /bin/ip ]] || missing+=(iproute2)
        command -v ethtool >/dev/null || [[ -x /usr/sbin/ethtool || -x /sbin/ethtool ]] || missing+=(ethtool)
    fi
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
    # the system python (not a pyenv shim) for the app, when there is one
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || true); fi
    ((HAVE_PROXY == 0)) || [[ -n $PYTHON ]] || die "python3 not found (needed by the proxy rows' app)"
}

free_port() { # [ADDR], default 127.0.0.1
    if command -v python3 >/dev/null; then
        timeout 10 python3 -c 'import socket, sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "${1:-127.0.0.1}"
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

# "USER SYS" ticks of the proxy rows' app (its threads included), "0 0" when there is none
app_ticks() { if [[ -n ${APP_PID:-} ]]; then proc_ticks "$APP_PID"; else echo "0 0"; fi; }
# --netns: "NAPI0 NAPI1 KSOFTIRQD RETRANS" = ticks of the napi/fb0-*, napi/fb1-* and ksoftirqd/*
# kernel threads, and the host namespace's TcpRetransSegs (the servers' sockets live there)
kt_sum() { local p t=0 u s; for p in "$@"; do read -r u s < <(proc_ticks "$p"); t=$((t + u + s)); done; echo "$t"; }
kernel_ticks() {
    if ((NET_ACTIVE == 0)); then echo "0 0 0 0"; return; fi
    # shellcheck disable=SC2086 # pid lists
    echo "$(kt_sum $NAPI0_PIDS) $(kt_sum $NAPI1_PIDS) $(kt_sum $KSOFTIRQD_PIDS) $(awk '$1 == "Tcp:" { if (h) { for (i = 2; i <= NF; i++) if (n[i] == "RetransSegs") print $i; exit } h = 1; for (i = 2; i <= NF; i++) n[i] = $i }' /proc/net/snmp)"
}

# Measured windows. win_reset; then one or more win_begin / win_end pairs (their deltas add
# up: the 1 GiB downloads are one pair per download, so the time between downloads is not
# counted); then win_report LABEL, which sets W_SRV (server ticks, user+sys) and W_APP (the
# app's), writes the CPU accounting of the windows to the details, and notes disturbed ones:
#   client = this shell and its reaped children (curl / wrk / the harness itself),
#   other  = machine busy ticks - server - app - client (other processes on the shared machine),
#            and with --netns also - the veth pair's NAPI kernel threads (reported on their own).
win_reset() { WA_SU=0 WA_SS=0 WA_AU=0 WA_AS=0 WA_CLIENT=0 WA_BUSY=0 WA_TOTAL=0 WA_STEAL=0 WA_N=0 WA_N0=0 WA_N1=0 WA_KS=0 WA_RETX=0; }
win_begin() {
    local me=$BASHPID
    read -r W_SU0 W_SS0 < <(server_ticks)
    read -r W_AU0 W_AS0 < <(app_ticks)
    read -r W_CU0 W_CS0 < <(proc_ticks "$me")
    read -r W_K00 W_K10 W_KS0 W_RX0 < <(kernel_ticks)
    read -r W_B0 W_T0 W_ST0 < <(machine_ticks)
}
win_end() {
    local me=$BASHPID su ss au as cu cs b t st k0 k1 ks rx
    read -r b t st < <(machine_ticks)
    read -r su ss < <(server_ticks)
    read -r au as < <(app_ticks)
    read -r cu cs < <(proc_ticks "$me")
    read -r k0 k1 ks rx < <(kernel_ticks)
    WA_N0=$((WA_N0 + k0 - W_K00)) WA_N1=$((WA_N1 + k1 - W_K10)) WA_KS=$((WA_KS + ks - W_KS0)) WA_RETX=$((WA_RETX + rx - W_RX0))
    WA_SU=$((WA_SU + su - W_SU0)) WA_SS=$((WA_SS + ss - W_SS0))
    WA_AU=$((WA_AU + au - W_AU0)) WA_AS=$((WA_AS + as - W_AS0))
    WA_CLIENT=$((WA_CLIENT + cu - W_CU0 + cs - W_CS0))
    WA_BUSY=$((WA_BUSY + b - W_B0)) WA_TOTAL=$((WA_TOTAL + t - W_T0)) WA_STEAL=$((WA_STEAL + st - W_ST0))
    WA_N=$((WA_N + 1))
}
win_report() {
    local other app=""
    W_SRV=$((WA_SU + WA_SS))
    W_APP=$((WA_AU + WA_AS))
    # the veth pair's NAPI threads work for this benchmark: not "other processes"
    other=$((WA_BUSY - W_SRV - W_APP - WA_CLIENT - WA_N0 - WA_N1))
    [[ -z ${APP_PID:-} ]] || app="; app user=$WA_AU sys=$WA_AS"
    local kt=""
    ((NET_ACTIVE == 0)) || kt="; napi/$VETH_HOST=$WA_N0 napi/$VETH_NS=$WA_N1 (kernel threads); ksoftirqd=$WA_KS (in other processes); host TcpRetransSegs +$WA_RETX"
    echo "  $1 CPU ticks (1/$CLK_TCK s$( ((WA_N > 1)) && echo ", summed over $WA_N windows")): server user=$WA_SU sys=$WA_SS$app; client+harness=$WA_CLIENT$kt; other processes=$other; steal=$WA_STEAL; capacity=$WA_TOTAL" >>"$RES/details"
    if ((WA_TOTAL > 0 && (other * 100 > WA_TOTAL * 10 || WA_STEAL * 100 > WA_TOTAL * 5))); then
        note "$CUR_NAME: $1 disturbed: other processes used $((other * 100 / WA_TOTAL))% and steal $((WA_STEAL * 100 / WA_TOTAL))% of the machine's CPU during it"
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
    head -c "$MIB" /dev/urandom >"$WORK/files/f1m.bin"
    [[ $(stat -c %s "$WORK/files/big.bin") -eq $BIG_SIZE ]] || die "big.bin generation failed (openssl?)"
    chmod 755 "$WORK/files"
    chmod 644 "$WORK"/files/*
    if ((HAVE_TLS)); then
        # one self-signed P-256 certificate for both TLS servers
        mkdir -p "$WORK/tls"
        timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
            -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >"$WORK/tls/openssl.log" 2>&1 ||
            { cat "$WORK/tls/openssl.log" >&2; die "openssl req (self-signed certificate) failed"; }
    fi
    # the 1 GiB just written is dirty page cache: write it back now, not during a measurement
    log "writing back and warming the page cache"
    bg_wait timeout 300 sync -f "$WORK/files/big.bin" || log "sync did not finish (ignored)"
    cat "$WORK"/files/*.bin >/dev/null
}

# ---------------------------------------------------------------- --netns: namespace + veth
# curl runs in its own network namespace, connected to the servers by a veth pair on a private
# /30 (10.203.0.1 host side, 10.203.0.2 in the namespace), which exists only on that pair: the
# namespace has no other interface than lo and no default route, and the host side is checked
# to route 10.203.0.2 to the veth before anything is sent. Deleted in the EXIT trap.
#
# Why threaded NAPI (not plain veth): veth_xmit() hands a TSO-sized TCP skb to the peer with
# netif_rx() unless the *sending* device has TSO off (veth_skb_is_eligible_for_gro()), and
# netif_rx() work runs as a softirq when the sender re-enables bottom halves, i.e. in the
# server's context, exactly as on loopback. With TSO off and GRO on, the peer's NAPI is used,
# and with /sys/class/net/<dev>/threaded = 1 that NAPI poll runs in a kernel thread
# (napi/<dev>-<id>) whose CPU is measured separately. MTU 65535 keeps the skbs as large as with
# TSO (one MSS ~ 64 KiB), so turning TSO off adds no software segmentation.
ns_exec() { ip netns exec "$NS" "$@"; }
netns_fail() { # reason: fatal with --netns/--netns-plain, otherwise fall back to loopback
    # only what this run created (a namespace or link that existed before is left alone)
    ((NETNS_CREATED == 0)) || teardown_netns
    NETNS_CREATED=0
    if ((NET_MODE_SET)); then die "--$NET_MODE: $1"; fi
    log "NOTE: network namespace setup failed ($1): the static rows run over loopback"
    NET_INFO+=("network namespace setup failed ($1), so the 1 GiB static downloads ran over loopback")
    NET_MODE=loopback
}
teardown_netns() {
    # only what setup_netns created: it refused to start if either name already existed
    if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "$NS"; then
        ip netns del "$NS" 2>/dev/null || log "could not delete network namespace $NS"
    fi
    # deleting the namespace deletes fb1 and with it its peer fb0; make sure
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        ip link del "$VETH_HOST" 2>/dev/null || log "could not delete $VETH_HOST"
    fi
    NET_ACTIVE=0
}
# "name on|off, ..." for the offloads that matter here, from ethtool -k (run by $@)
offload_state() {
    "$@" 2>/dev/null | awk -F': ' '
        $1 ~ /^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|scatter-gather|tx-checksumming|rx-checksumming|rx-gro-list|rx-udp-gro-forwarding)$/ {
            split($2, v, " "); printf "%s%s %s", sep, $1, v[1]; sep = ", " }
        END { print "" }'
}
veth_drops() { # "fb0_tx fb0_rx fb1_tx fb1_rx" dropped counters
    local st=/sys/class/net/$VETH_HOST/statistics
    echo "$(cat "$st/tx_dropped") $(cat "$st/rx_dropped") $(ns_exec cat "/sys/class/net/$VETH_NS/statistics/tx_dropped" "/sys/class/net/$VETH_NS/statistics/rx_dropped" | tr '\n' ' ')"
}
kthread_pids() { ps -eo pid=,comm= | awk -v re="$1" '$2 ~ re { printf "%s ", $1 }'; }
setup_netns() {
    command -v ip >/dev/null || { netns_fail "ip (iproute2) not found"; return; }
    ((EUID == 0)) || { netns_fail "needs root"; return; }
    if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "$NS"; then
        netns_fail "network namespace $NS already exists (another bench run, or one that was killed: ip netns del $NS)"
        return
    fi
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        netns_fail "a link named $VETH_HOST already exists (another bench run, or one that was killed: ip link del $VETH_HOST)"
        return
    fi
    # the /30 must not be in use anywhere on this host: no address, no route
    if ip -4 -o addr show | grep -qE ' inet 10\.203\.0\.[0-3]/'; then netns_fail "an address in 10.203.0.0/30 is already configured"; return; fi
    if ip -4 route show table all | grep -qE '^((local|broadcast) )?10\.203\.0\.'; then netns_fail "a route into 10.203.0.0/30 already exists"; return; fi
    NETNS_CREATED=1 # from here on the EXIT trap deletes the namespace and the veth pair
    log "network namespace $NS, veth $VETH_HOST ($NS_SRV_ADDR/$NS_PREFIX) <-> $VETH_NS ($NS_CLI_ADDR/$NS_PREFIX, in $NS), MTU $NS_MTU"
    {
        ip netns add "$NS" &&
            ip link add "$VETH_HOST" type veth peer name "$VETH_NS" &&
            ip link set "$VETH_NS" netns "$NS" &&
            ip addr add "$NS_SRV_ADDR/$NS_PREFIX" dev "$VETH_HOST" &&
            ip link set "$VETH_HOST" mtu "$NS_MTU" up &&
            ip -n "$NS" addr add "$NS_CLI_ADDR/$NS_PREFIX" dev "$VETH_NS" &&
            ip -n "$NS" link set lo up &&
            ip -n "$NS" link set "$VETH_NS" mtu "$NS_MTU" up
    } >&2 || { netns_fail "creating the namespace or the veth pair failed"; return; }
    # traffic to the /30 stays on the pair: the host routes 10.203.0.2 to fb0, the namespace
    # has fb1 and lo only, and no default route
    ip -o route get "$NS_CLI_ADDR" 2>/dev/null | grep -q " dev $VETH_HOST " ||
        { netns_fail "$NS_CLI_ADDR is not routed to $VETH_HOST"; return; }
    ip -n "$NS" -o route get "$NS_SRV_ADDR" 2>/dev/null | grep -q " dev $VETH_NS " ||
        { netns_fail "$NS_SRV_ADDR is not routed to $VETH_NS in $NS"; return; }
    [[ -z $(ip -n "$NS" route show default 2>/dev/null) ]] || { netns_fail "$NS has a default route"; return; }
    if [[ -n $NETNS_CC ]]; then
        # per-route congestion control: only connections over this /30 (the servers' accepted
        # sockets toward curl) use it; the host's default is left alone
        grep -qw -- "$NETNS_CC" /proc/sys/net/ipv4/tcp_available_congestion_control ||
            die "--netns-cc $NETNS_CC: not in tcp_available_congestion_control ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))"
        { ip route change "$NS_NET/$NS_PREFIX" dev "$VETH_HOST" proto kernel scope link src "$NS_SRV_ADDR" congctl "$NETNS_CC" >&2 &&
            ip -o route get "$NS_CLI_ADDR" | grep -q " dev $VETH_HOST .*congctl $NETNS_CC"; } ||
            die "--netns-cc $NETNS_CC: could not set congctl on the $NS_NET/$NS_PREFIX route"
    fi
    [[ $(ip -n "$NS" -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort | tr '\n' ' ') == "$VETH_NS lo " ]] ||
        { netns_fail "$NS has other links than lo and $VETH_NS"; return; }
    # the veth pair needs a moment after "up" before it carries traffic (carrier)
    local i
    for i in $(seq 50); do
        [[ $(cat "/sys/class/net/$VETH_HOST/carrier" 2>/dev/null) == 1 ]] && break
        sleep 0.1
    done
    if [[ $NET_MODE == netns ]]; then
        command -v ethtool >/dev/null || { netns_fail "ethtool not found (needed to turn on NAPI)"; return; }
        { ethtool -K "$VETH_HOST" tso off gro on && ns_exec ethtool -K "$VETH_NS" tso off gro on; } >&2 ||
            { netns_fail "ethtool -K tso off gro on failed"; return; }
        { echo 1 >"/sys/class/net/$VETH_HOST/threaded" && ns_exec sh -c "echo 1 > /sys/class/net/$VETH_NS/threaded"; } 2>/dev/null ||
            { netns_fail "could not turn on threaded NAPI (/sys/class/net/<dev>/threaded)"; return; }
        NAPI0_PIDS=$(kthread_pids "^napi/$VETH_HOST-")
        NAPI1_PIDS=$(kthread_pids "^napi/$VETH_NS-")
        [[ -n $NAPI0_PIDS && -n $NAPI1_PIDS ]] || { netns_fail "no napi/$VETH_HOST-* or napi/$VETH_NS-* kernel thread after threaded = 1"; return; }
    fi
    KSOFTIRQD_PIDS=$(kthread_pids '^ksoftirqd/')
    local cc_default qdisc
    cc_default=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo "?")
    qdisc=$(tc qdisc show dev "$VETH_HOST" 2>/dev/null | awk '{ print $2; exit }')
    if [[ -n $NETNS_CC ]]; then
        NET_INFO+=("TCP congestion control of the servers toward curl: **$NETNS_CC**, set on the $NS_NET/$NS_PREFIX route only (\`ip route ... congctl $NETNS_CC\`, \`--netns-cc\`); the host default is $cc_default. qdisc on $VETH_HOST: ${qdisc:-none (noqueue)}")
    else
        NET_INFO+=("TCP congestion control of the servers toward curl: the host default, **$cc_default** (net.ipv4.tcp_congestion_control; \`--netns-cc\` not given). qdisc on $VETH_HOST: ${qdisc:-none (noqueue)}$( [[ $cc_default != bbr ]] || echo "; with bbr and no fq qdisc, TCP paces internally: an hrtimer armed per paced skb, a per-skb cost every send path pays (see README)")")
    fi
    # a first request through the pair, so that ARP/neighbour setup is not in a measured window
    ns_exec timeout 10 curl -s -o /dev/null --connect-timeout 3 "http://$NS_SRV_ADDR:1/" 2>/dev/null || true
    STATIC_ADDR=$NS_SRV_ADDR
    CLIENT_CMD_NET=(ip netns exec "$NS")
    NET_ACTIVE=1
    local t0 t1
    t0=$(cat "/sys/class/net/$VETH_HOST/threaded" 2>/dev/null || echo "?")
    t1=$(ns_exec cat "/sys/class/net/$VETH_NS/threaded" 2>/dev/null || echo "?")
    if command -v ethtool >/dev/null; then
        NET_INFO+=("$VETH_HOST (host side), \`ethtool -k\`: $(offload_state ethtool -k "$VETH_HOST"); threaded NAPI $t0 ($(kthread_pids "^napi/$VETH_HOST-" | wc -w) kthreads)")
        NET_INFO+=("$VETH_NS (in $NS), \`ethtool -k\`: $(offload_state ns_exec ethtool -k "$VETH_NS"); threaded NAPI $t1 ($(kthread_pids "^napi/$VETH_NS-" | wc -w) kthreads)")
    else
        NET_INFO+=("$VETH_HOST (host side): ethtool not installed, offloads are veth's defaults; threaded NAPI $t0")
        NET_INFO+=("$VETH_NS (in $NS): ethtool not installed, offloads are veth's defaults; threaded NAPI $t1")
    fi
    local l
    for l in "${NET_INFO[@]}"; do log "netns: $l"; done
}
CLIENT_CMD_NET=()

# ---------------------------------------------------------------- servers
# start_nginx PORT MODE; MODE = static | proxy | tls (the server block differs, the rest not)
start_nginx() {
    local port=$1 mode=$2 d=$WORK/nginx-$2 upstream="" server ready
    mkdir -p "$d/tmp"
    local user_line=""
    ((EUID != 0)) || user_line="user root;" # files live under a 0755 dir anyway
    case $mode in
        static)
            ready="http://$STATIC_ADDR:$port/static/f4k.bin"
            server="
        listen $STATIC_ADDR:$port;
        location /static/ { alias $WORK/files/; }"
            ;;
        proxy)
            ready="http://127.0.0.1:$port/accel"
            upstream="
    upstream app {
        server 127.0.0.1:$APP_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }"
            server="
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location /protected/ { internal; alias $WORK/files/; }"
            ;;
        tls)
            ready="https://127.0.0.1:$port/static/f4k.bin"
            server="
        listen 127.0.0.1:$port ssl;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.3;
        location /static/ { alias $WORK/files/; }"
            ;;
        *) die "start_nginx: unknown mode $mode" ;;
    esac
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
    scgi_temp_path $d/tmp/scgi;$upstream
    server {$server
    }
}
EOF
    timeout 20 nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -t >"$d/configtest.log" 2>&1 ||
        { cat "$d/configtest.log" >&2; die "nginx -t failed"; }
    cp "$d/nginx.conf" "$RES/nginx.conf"
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
    SRV_PID=$!
    track "$SRV_PID"
    SRV_LOG=$d/error.log
    wait_ready "$ready" || {
        tail -n 20 "$d/error.log" "$d/stdout.log" >&2 || true
        die "nginx did not become ready"
    }
    local w
    for w in $(pgrep -P "$SRV_PID"); do track "$w"; done
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "nginx ($mode) master $SRV_PID, workers: $SRV_KIDS"
}

# start_ferry NAME PORT ADMIN_PORT: NAME = a static send path, "proxy" or "tls" (TLS_PORT set)
start_ferry() {
    local name=$1 port=$2 admin=$3 d=$WORK/ferry-$1 extra="" ready_line addr=127.0.0.1
    mkdir -p "$d"
    case $name in sendfile | splice | buffered) addr=$STATIC_ADDR ;; esac
    ready_line="listening http $addr:$port"
    case $name in
        sendfile | splice | buffered)
            extra="[io]
send_path = \"$name\"
[[location]]
prefix = \"/static/\"
root = \"$WORK/files\""
            ;;
        proxy)
            extra="[upstream]
address = \"127.0.0.1:$APP_PORT\"
[[location]]
prefix = \"/protected/\"
root = \"$WORK/files\"
internal = true"
            ;;
        tls)
            ready_line="listening https 127.0.0.1:$TLS_PORT"
            extra="[tls]
listen = [\"127.0.0.1:$TLS_PORT\"]
cert = \"$WORK/tls/cert.pem\"
key = \"$WORK/tls/key.pem\"
ktls = \"auto\"
[[location]]
prefix = \"/static/\"
root = \"$WORK/files\""
            ;;
        *) die "start_ferry: unknown kind $name" ;;
    esac
    cat >"$d/ferry.toml" <<EOF
[server]
listen = ["$addr:$port"]
access_log = "off"
[admin]
listen = "127.0.0.1:$admin"
$extra
EOF
    cp "$d/ferry.toml" "$RES/ferry.toml"
    "$FERRY_BIN" serve --config "$d/ferry.toml" >"$d/ferry.log" 2>&1 &
    SRV_PID=$!
    track "$SRV_PID"
    SRV_LOG=$d/ferry.log
    wait_ready "http://127.0.0.1:$admin/healthz" || {
        log "ferry log (tail):"; tail -n 30 "$d/ferry.log" >&2 || true
        die "ferry ($name) did not become ready"
    }
    # readiness line in its log (ferry prints it on stderr); give it a moment in case it is printed just after bind
    local i
    for i in $(seq 20); do grep -q "$ready_line" "$d/ferry.log" && break; sleep 0.1; done
    if ! grep -q "$ready_line" "$d/ferry.log"; then
        note "ferry ($name): healthz answered but no '$ready_line' line in its output"
    fi
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "ferry ($name) pid $SRV_PID, http :$port$( [[ $name != tls ]] || echo ", https :$TLS_PORT"), admin :$admin"
}

# the proxy rows' upstream app (bench/app.py), started fresh for each proxy row
start_app() {
    local d=$RES/app i
    mkdir -p "$d"
    APP_PORT=$(free_port)
    "$PYTHON" "$APP_PY" --port "$APP_PORT" --file "$WORK/files/f1m.bin" --accel-to "$ACCEL_TO" >"$d/app.log" 2>&1 &
    APP_PID=$!
    track "$APP_PID"
    for i in $(seq 100); do
        grep -qx ready "$d/app.log" 2>/dev/null && break
        alive "$APP_PID" || break
        sleep 0.1
    done
    grep -qx ready "$d/app.log" 2>/dev/null || { cat "$d/app.log" >&2; die "the app (bench/app.py) did not start"; }
    log "app ($PYTHON bench/app.py) pid $APP_PID, :$APP_PORT"
}
stop_app() {
    [[ -n ${APP_PID:-} ]] || return 0
    local pid=$APP_PID i
    APP_PID=
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
}

# poll URL until it answers 2xx, at most ~10 s; fail early if the server died
wait_ready() {
    local url=$1 i
    for i in $(seq 100); do
        alive "$SRV_PID" || { log "server process $SRV_PID exited during startup"; return 1; }
        timeout 2 curl -skf -o /dev/null "$url" && return 0
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

# Δ of every labelled sample of a metric family between two scrapes: "labels delta" lines, Δ > 0
metric_deltas() { # from-tag to-tag name
    awk -v n="$3" 'FNR == NR { if (index($1, n "{") == 1) a[$1] = $NF; next }
        index($1, n "{") == 1 { d = $NF - a[$1]; if (d > 0) printf "%s %.0f\n", $1, d }' "$RES/metrics.$1" "$RES/metrics.$2"
}
# the send paths that carried body bytes between two scrapes, with their share: "sendfile 100%"
body_paths() { # from-tag to-tag
    [[ $CUR_KIND == ferry ]] || { echo "n/a"; return; }
    metric_deltas "$1" "$2" ferry_body_bytes_total | awk '
        { match($1, /path="[^"]*"/); p[NR] = substr($1, RSTART + 6, RLENGTH - 7); d[NR] = $2; t += $2 }
        END { if (t == 0) { print "no bytes"; exit }
              for (i = 1; i <= NR; i++) if (d[i] * 100 >= t) { printf "%s%s %.0f%%", sep, p[i], 100 * d[i] / t; sep = ", " }
              print "" }'
}
# the send path fallbacks counted between two scrapes: "ktls->tls_buffered (ulp_unavailable) x7"
fallbacks() { # from-tag to-tag
    metric_deltas "$1" "$2" ferry_fallbacks_total | awk '
        { f = t = r = "?"
          if (match($1, /from="[^"]*"/)) f = substr($1, RSTART + 6, RLENGTH - 7)
          if (match($1, /to="[^"]*"/)) t = substr($1, RSTART + 4, RLENGTH - 5)
          if (match($1, /reason="[^"]*"/)) r = substr($1, RSTART + 8, RLENGTH - 9)
          printf "%s%s->%s (%s) x%d", sep, f, t, r, $2; sep = ", " }
        END { if (NR == 0) printf "none"; print "" }'
}

# fetch URL and compare the body with FILE byte for byte, streaming (no copy on disk, so no
# dirty page cache to write back during the measurements); outside the measured windows
check_body() { # url file what
    local url=$1 file=$2 what=$3 out
    out=$( (timeout 120 "${CLIENT_CMD[@]}" curl -sS --fail "${CURL_OPTS[@]}" "$url" | cmp - "$file") 2>&1) && return 0
    die "$CUR_NAME: $what: the body differs from $(basename "$file") or the request failed: ${out:-no output}"
}
verify_content() {
    local base=$1 f
    for f in f4k.bin f64k.bin big.bin; do
        check_body "$base/$f" "$WORK/files/$f" "GET /static/$f"
    done
    log "$CUR_NAME: content check OK (4 KiB, 64 KiB, 1 GiB byte-for-byte)"
}

bench_download() {
    local url=$1 i size t bytes=0 drops0="" drops1=""
    : >"$RES/downloads"
    ((NET_ACTIVE == 0 || ${#CLIENT_CMD[@]} == 0)) || drops0=$(veth_drops)
    win_reset
    for i in $(seq "$N_DOWNLOADS"); do
        # one window per download: from just before curl starts to just after it exits
        win_begin
        bg_wait timeout 300 "${CLIENT_CMD[@]}" curl -s "${CURL_OPTS[@]}" -o /dev/null -w '%{size_download} %{time_total}\n' "$url" >"$RES/curl.out" ||
            die "$CUR_NAME: curl failed (exit $?) on download $i"
        win_end
        read -r size t <"$RES/curl.out"
        [[ $size -eq $BIG_SIZE ]] || die "$CUR_NAME: SHORT DOWNLOAD $i: got $size bytes, expected $BIG_SIZE"
        echo "$size $t" >>"$RES/downloads"
        bytes=$((bytes + size))
        log "$CUR_NAME: 1 GiB download $i/$N_DOWNLOADS: $(fmt "$(awk -v s="$size" -v t="$t" 'BEGIN{print s/1048576/t}')" 0) MiB/s"
    done
    echo "1 GiB download x$N_DOWNLOADS, size/time_total each: $(tr '\n' ';' <"$RES/downloads")" >>"$RES/details"
    win_report "1 GiB downloads"
    check_server "1 GiB downloads"
    DL_MIBS=$(awk '{ print $1 / 1048576 / $2 }' "$RES/downloads" | median)
    DL_CPU=$(awk -v t="$W_SRV" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { print (t / hz) / (b / 1073741824) }')
    # per GiB, the same windows: the veth pair's NAPI threads and ksoftirqd (--netns)
    per_gib() { awk -v t="$1" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { print (t / hz) / (b / 1073741824) }'; }
    DL_N0=$(per_gib "$WA_N0") DL_N1=$(per_gib "$WA_N1") DL_KS=$(per_gib "$WA_KS") DL_RETX=$WA_RETX
    if [[ -n $drops0 ]]; then
        drops1=$(veth_drops)
        echo "  veth drops before / after the downloads ($VETH_HOST tx rx, $VETH_NS tx rx): $drops0 / $drops1" >>"$RES/details"
        [[ $drops0 == "$drops1" ]] || note "$CUR_NAME: the veth pair dropped packets during the 1 GiB downloads ($drops0 -> $drops1)"
    fi
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

bench_wrk() { # label url filesize connections
    local label=$1 url=$2 fsize=$3 conns=$4 out=$RES/wrk.$1 reqs rps p99 readb errs non2xx
    win_reset
    win_begin
    bg_wait timeout $((WRK_SECS + 60)) wrk -t"$WRK_THREADS" -c"$conns" -d"${WRK_SECS}s" --latency "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "$CUR_NAME: wrk $label failed"; }
    win_end
    reqs=$(awk '/requests in/ { print $1; exit }' "$out")
    echo "wrk $label (-c$conns): ${reqs:-?} requests" >>"$RES/details"
    win_report "wrk $label"
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
    WRK_APP_CPU=$(awk -v t="$W_APP" -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN { print (t / hz) * 1e6 / r }')
    echo "  wrk $label: $readb read, $rps req/s, p99 $p99${errs:+; socket errors: $errs}" >>"$RES/details"
    log "$CUR_NAME: $label: $WRK_RPS req/s, p99 $WRK_P99, $(fmt "$WRK_CPU" 1) µs CPU/req$( [[ -z ${APP_PID:-} ]] || echo " (app: $(fmt "$WRK_APP_CPU" 1) µs/req)")"
}

# ferry's zero-copy counters at the end of a run, into the details and the log
ferry_counters_to_details() { # tag
    {
        echo "ferry /metrics at end of run:"
        grep -E '^(ferry_zero_copy_bytes_total|ferry_body_bytes_total)[{ ]' "$RES/metrics.$1" | sed 's/^/    /' || echo "    (ferry_zero_copy_bytes_total / ferry_body_bytes_total not found)"
    } >>"$RES/details"
    log "$CUR_NAME: metrics at end of run:"
    grep -E '^(ferry_zero_copy_bytes_total|ferry_body_bytes_total)[{ ]' "$RES/metrics.$1" >&2 || log "  (metrics not found)"
}

# static files: the first table
run_static() {
    local port=$1 label path
    if [[ $CUR_KIND == nginx ]]; then
        start_nginx "$port" static
        label="nginx" path="sendfile on, tcp_nopush on"
    else
        start_ferry "${CUR_NAME#ferry:}" "$port" "$ADMIN_PORT"
        label="ferry" path=${CUR_NAME#ferry:}
    fi
    local base="http://$STATIC_ADDR:$port/static"
    note_start
    # content check and 1 GiB downloads: from the client namespace over the veth pair (--netns)
    CLIENT_CMD=("${CLIENT_CMD_NET[@]}")
    verify_content "$base"
    scrape start
    bench_download "$base/big.bin"
    scrape big
    if ((NET_ACTIVE)); then
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$path" "$(fmt "$DL_CPU" 3)" \
            "$( [[ -n $NAPI0_PIDS ]] && fmt "$DL_N0" 3 || echo n/a)" "$( [[ -n $NAPI1_PIDS ]] && fmt "$DL_N1" 3 || echo n/a)" \
            "$( [[ -n $NAPI0_PIDS ]] && fmt "$(awk -v a="$DL_CPU" -v b="$DL_N0" 'BEGIN { print a + b }')" 3 || echo n/a)" "$(fmt "$DL_KS" 3)" "$DL_RETX" >"$RES/netrow"
    fi
    # wrk: from the host namespace; to $STATIC_ADDR, a local address, the kernel routes over lo
    CLIENT_CMD=()
    bench_wrk 4k "$base/f4k.bin" 4096 "$WRK_CONNS"
    local r4=$WRK_RPS p4=$WRK_P99 c4=$WRK_CPU
    scrape 4k
    bench_wrk 64k "$base/f64k.bin" 65536 "$WRK_CONNS"
    local r64=$WRK_RPS p64=$WRK_P99 c64=$WRK_CPU
    scrape 64k

    local zc="n/a"
    if [[ $CUR_KIND == ferry ]]; then
        zc="$(zc_share start big) / $(zc_share big 4k) / $(zc_share 4k 64k)"
        ferry_counters_to_details 64k
        [[ $zc != *"no metric"* ]] || note "$CUR_NAME: ferry_zero_copy_bytes_total / ferry_body_bytes_total missing from /metrics"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$path" "$(fmt "$DL_MIBS" 0)" "$(fmt "$DL_CPU" 3)" \
        "$r4" "$p4" "$(fmt "$c4" 1)" "$r64" "$p64" "$(fmt "$c64" 1)" "$zc" >"$RES/row"
}

# 1 MiB via X-Accel-Redirect and 1 MiB proxied, from bench/app.py: the second table
run_proxy() {
    local port=$1 label config
    start_app
    if [[ $CUR_KIND == nginx ]]; then
        start_nginx "$port" proxy
        label=nginx config="proxy_pass, upstream keepalive 32, proxy_buffering on (default); internal location, sendfile on"
    else
        start_ferry proxy "$port" "$ADMIN_PORT"
        label=ferry config="[upstream] (idle_connections 32, default); internal location; send_path auto"
    fi
    local base="http://127.0.0.1:$port"
    note_start
    check_body "$base/accel" "$WORK/files/f1m.bin" "GET /accel"
    check_body "$base/proxied" "$WORK/files/f1m.bin" "GET /proxied"
    # the app's X-Accel-Redirect must not reach the client, nor may the internal location
    timeout 10 curl -sS -D "$RES/accel.head" -o /dev/null "$base/accel" || die "$CUR_NAME: GET /accel (head) failed"
    ! grep -qi '^x-accel-redirect' "$RES/accel.head" || die "$CUR_NAME: X-Accel-Redirect passed on to the client"
    local st
    st=$(timeout 10 curl -s -o /dev/null -w '%{http_code}' "$base$ACCEL_TO") || true
    [[ $st == 404 ]] || note "$CUR_NAME: GET $ACCEL_TO directly answered $st, expected 404 (internal location)"
    log "$CUR_NAME: content check OK (/accel and /proxied: 1 MiB byte-for-byte)"
    scrape start
    bench_wrk accel "$base/accel" "$MIB" "$PROXY_CONNS"
    local ra=$WRK_RPS pa=$WRK_P99 ca=$WRK_CPU aa=$WRK_APP_CPU
    scrape accel
    bench_wrk proxied "$base/proxied" "$MIB" "$PROXY_CONNS"
    local rp=$WRK_RPS pp=$WRK_P99 cp=$WRK_CPU ap=$WRK_APP_CPU
    scrape proxied

    local paths
    if [[ $CUR_KIND == ferry ]]; then
        paths="$(body_paths start accel) (zero-copy $(zc_share start accel)) / $(body_paths accel proxied) (zero-copy $(zc_share accel proxied))"
        ferry_counters_to_details proxied
        metric_deltas start proxied ferry_upstream_requests_total | sed 's/^/    Δ /' >>"$RES/details"
    else
        paths="file: sendfile / app body: read into proxy buffers, written from user space"
        local tmpfiles
        tmpfiles=$(grep -c 'buffered to a temporary file' "$SRV_LOG" 2>/dev/null || true)
        echo "nginx: 'an upstream response is buffered to a temporary file' warnings: ${tmpfiles:-0}" >>"$RES/details"
        ((${tmpfiles:-0} == 0)) || note "$CUR_NAME: nginx buffered ${tmpfiles} proxied responses to temporary files (proxy_max_temp_file_size default)"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$config" "$ra" "$pa" "$(fmt "$ca" 1)" "$(fmt "$aa" 1)" \
        "$rp" "$pp" "$(fmt "$cp" 1)" "$(fmt "$ap" 1)" "$paths" >"$RES/row"
}

# 1 GiB over TLS: the third table
run_tls() {
    local port=$1 label config path cipher
    CURL_OPTS=(-k --http1.1)
    if [[ $CUR_KIND == nginx ]]; then
        start_nginx "$port" tls
        label=nginx config="listen ssl, ssl_protocols TLSv1.3, sendfile on"
    else
        TLS_PORT=$(free_port)
        [[ $TLS_PORT != "$port" && $TLS_PORT != "$ADMIN_PORT" ]] || TLS_PORT=$(free_port)
        start_ferry tls "$port" "$ADMIN_PORT"
        port=$TLS_PORT
        label=ferry config="[tls] ktls = \"auto\""
    fi
    local base="https://127.0.0.1:$port/static"
    note_start
    cipher=$(timeout 10 curl -sv "${CURL_OPTS[@]}" -o /dev/null "$base/f4k.bin" 2>&1 | sed -n 's/.*SSL connection using //p' | head -1 | tr -d '\r') || true
    [[ -n $cipher ]] || die "$CUR_NAME: could not read the negotiated cipher from curl -v"
    echo "negotiated (curl -v): $cipher" >>"$RES/details"
    echo "$cipher" >"$RES/cipher"
    log "$CUR_NAME: negotiated $cipher"
    verify_content "$base"
    scrape start
    bench_download "$base/big.bin"
    scrape big
    if [[ $CUR_KIND == ferry ]]; then
        path="$(body_paths start big); kTLS fallbacks: $(fallbacks start big)"
        ferry_counters_to_details big
        metric_deltas start big ferry_tls_handshakes_total | sed 's/^/    Δ /' >>"$RES/details"
    else
        path="OpenSSL in user space (no kTLS on this kernel, so sendfile is not used)"
    fi
    printf '| %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$config" "$cipher" "$path" "$(fmt "$DL_MIBS" 0)" "$(fmt "$DL_CPU" 3)" >"$RES/row"
}

note_start() {
    local load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "load average at start: $load; $QUIET_INFO" >>"$RES/details"
    ((QUIET_BUSY < 15)) || note "$CUR_NAME: started on a busy machine ($QUIET_INFO)"
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
    APP_PID=
    CURL_OPTS=()
    CLIENT_CMD=()
    trap 'stop_server; stop_app' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    case $run in
        proxy:* | tls:* | cache:*) port=$(free_port) ;;
        *) port=$(free_port "$STATIC_ADDR") ;;
    esac
    case $run in
        *nginx) CUR_KIND=nginx ;;
        *)
            CUR_KIND=ferry
            ADMIN_PORT=$(free_port)
            [[ $ADMIN_PORT != "$port" ]] || ADMIN_PORT=$(free_port)
            ;;
    esac
    case $run in
        proxy:*) run_proxy "$port" ;;
        tls:*) run_tls "$port" ;;
        cache:*) run_cache "$port" ;;
        *) run_static "$port" ;;
    esac

    stop_server
    stop_app
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
[[ $NET_MODE == loopback ]] || setup_netns
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

# ---------------------------------------------------------------- suites
# Each is a script of its own (runnable alone, commands in RESULTS.md), given this build of
# ferry; its table goes into the section as it printed it.
if ((QUICK)); then SUITE_ROUNDS=1; else SUITE_ROUNDS=3; fi
suite_cmd() { # the command line of suite $1
    case $1 in
        h2) echo "bench/h2.sh --rounds $SUITE_ROUNDS $FERRY_BIN" ;;
        h2-bulk) echo "bench/h2.sh --rounds $SUITE_ROUNDS --size $BIG_SIZE $FERRY_BIN" ;;
        tls-keepalive) echo "bench/small_ab.sh --tls --rounds $SUITE_ROUNDS --secs $((WRK_SECS / 2)) $FERRY_BIN" ;;
        handshake) echo "bench/handshake.sh --rounds $SUITE_ROUNDS --secs $((WRK_SECS / 2)) --ferry $FERRY_BIN" ;;
        small) echo "bench/small_ab.sh --rounds $SUITE_ROUNDS --secs $((WRK_SECS / 2)) $FERRY_BIN" ;;
        small-ofc) echo "bench/small_ab.sh --open-file-cache --rounds $SUITE_ROUNDS --secs $((WRK_SECS / 2)) $FERRY_BIN" ;;
        floor) echo "bench/floor.sh --rounds $((SUITE_ROUNDS * 3)) --size $BIG_SIZE $FERRY_BIN" ;;
    esac
}
SUITE_RUNS=()
for suite in "${SUITES[@]}"; do
    case $suite in
        h2) SUITE_RUNS+=(h2 h2-bulk) ;;
        small) SUITE_RUNS+=(small small-ofc) ;;
        *) SUITE_RUNS+=("$suite") ;;
    esac
done
mkdir -p "$WORK/suites"
for suite in "${SUITE_RUNS[@]}"; do
    log "=== suite $suite: $(suite_cmd "$suite") ==="
    ((MAX_WAIT == 0)) || wait_quiet
    read -r -a cmd <<<"$(suite_cmd "$suite")"
    if ! (cd "$ROOT" && bg_wait timeout 3600 "${cmd[@]}" >"$WORK/suites/$suite" 2>"$WORK/suites/$suite.err"); then
        FAILED+=("$suite")
        log "suite $suite FAILED -- continuing: $(tail -3 "$WORK/suites/$suite.err" | tr '\n' ' ')"
        echo "FAILED: $(tail -3 "$WORK/suites/$suite.err" | tr '\n' ' ')" >>"$WORK/suites/$suite"
    fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
SECTION=$WORK/section.md
{
    echo
    echo "## $(date -u +%F)$( ((QUICK)) && echo " (quick)")$( ((NET_ACTIVE)) && echo " — 1 GiB static downloads from a network namespace over veth (${NET_MODE}, congestion control ${NETNS_CC:-$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null) (host default)})")"
    echo
    echo "- machine: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "- $NGINX_VERSION; ferry: $FERRY_VERSION; $(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }'); $(curl --version | head -1 | awk '{ print $1 " " $2 }')"
    echo "- command: \`$CMDLINE\`"
    echo "- load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
    echo "- 1 GiB: $N_DOWNLOADS x curl (a new connection each), median MiB/s; CPU s/GiB over one window per download (from just before curl starts to just after it exits). wrk: -t$WRK_THREADS -d${WRK_SECS}s --latency, -c$WRK_CONNS for static files, -c$PROXY_CONNS for the proxy rows. CPU = utime+stime of the server process(es) (ferry; nginx master + workers) from /proc over the measured windows."
    if ((NET_ACTIVE)); then
        echo "- client (curl / wrk) runs on the same $(nproc) cores as the server (and the app), page cache warm. **The static rows' content check and 1 GiB downloads** run curl in the network namespace \`$NS\` (\`ip netns exec $NS curl ...\`), connected by a veth pair: $VETH_HOST $NS_SRV_ADDR/$NS_PREFIX on the host side, where the static servers listen (on that address only), and $VETH_NS $NS_CLI_ADDR/$NS_PREFIX in the namespace (its only other link is lo; no default route), MTU $NS_MTU on both ends. The static rows' **wrk runs stay on loopback** (wrk in the host namespace to $NS_SRV_ADDR, a local address, which the kernel routes over lo), and so do the proxy and TLS rows (127.0.0.1)."
        if [[ $NET_MODE == netns ]]; then
            echo "- veth offloads: TSO off and GRO on at both ends, and threaded NAPI (\`/sys/class/net/<dev>/threaded\` = 1), so that a TCP skb crossing the pair is received by the peer's NAPI poll in a kernel thread (napi/$VETH_NS-* for the data curl receives, napi/$VETH_HOST-* for the ACKs the server receives) instead of by \`netif_rx()\` in the sender's softirq, which on loopback (and on a veth with TSO on) charges the receiver's TCP processing to the server. MTU $NS_MTU keeps one MSS at ~64 KiB, so TSO off adds no software segmentation."
        else
            echo "- veth offloads left at veth's defaults (\`--netns-plain\`): TSO on, GRO off, no NAPI, so veth_xmit() hands each skb to the peer with \`netif_rx()\` and the receive processing runs in the sender's softirq, as on loopback."
        fi
    else
        echo "- client (curl / wrk) runs on the same $(nproc) cores as the server (and the app), over loopback, page cache warm."
    fi
    for l in "${NET_INFO[@]}"; do echo "- $l"; done
    # row_or_failed RUN N-COLUMNS LABEL CONFIG
    row_or_failed() {
        local r=$WORK/results/$1 i cells=""
        if [[ -f $r/row ]]; then cat "$r/row"; return; fi
        for ((i = 3; i < $2; i++)); do cells+=" |"; done
        echo "| $3 | $4 | FAILED |$cells"
    }
    if ((HAVE_STATIC)); then
        echo
        echo "Static files (\`/static/\`):"
        echo
        echo "| server | path | 1 GiB MiB/s | CPU s/GiB | 4 KiB req/s | 4 KiB p99 | 4 KiB CPU µs/req | 64 KiB req/s | 64 KiB p99 | 64 KiB CPU µs/req | zero-copy share of body bytes (1 GiB / 4 KiB / 64 KiB) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for run in "${RUNS[@]}"; do
            case $run in
                nginx) row_or_failed "$run" 11 nginx "sendfile on, tcp_nopush on" ;;
                ferry:*) row_or_failed "$run" 11 ferry "${run#ferry:}" ;;
            esac
        done
        if ((NET_ACTIVE)); then
            echo
            echo "Kernel work during the same 1 GiB download windows (s/GiB; kernel threads are not part of the server's CPU): napi/$VETH_HOST is the host side of the pair (the ACKs the server receives, and the data transmits those ACKs clock out, which a real NIC's host would also do in softirq), napi/$VETH_NS is curl's side (receiving the data); ksoftirqd is all softirq work deferred to ksoftirqd/*, on the whole machine; retransmits are the host namespace's TcpRetransSegs (the servers' sockets; machine-wide):"
            echo
            echo "| server | path | server CPU s/GiB | napi/$VETH_HOST s/GiB | napi/$VETH_NS s/GiB | server + napi/$VETH_HOST s/GiB | ksoftirqd s/GiB | TCP retransmits |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|"
            for run in "${RUNS[@]}"; do
                case $run in nginx | ferry:*) [[ -f $WORK/results/$run/netrow ]] && cat "$WORK/results/$run/netrow" ;; esac
            done
        fi
    fi
    if ((HAVE_PROXY)); then
        echo
        echo "Proxy: the same app (bench/app.py, Python, one thread per connection) behind both; /accel answers \`X-Accel-Redirect: $ACCEL_TO\` with an empty body and the server sends the 1 MiB file from an internal location, /proxied is a 1 MiB app body (Content-Length) relayed by the server. wrk -t$WRK_THREADS -c$PROXY_CONNS -d${WRK_SECS}s; server CPU = ferry, or nginx master + workers; app CPU = the app process, per request, in the same window:"
        echo
        echo "| server | config | /accel req/s | /accel p99 | /accel server CPU µs/req | /accel app CPU µs/req | /proxied req/s | /proxied p99 | /proxied server CPU µs/req | /proxied app CPU µs/req | body send path (/accel / /proxied) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for run in "${RUNS[@]}"; do
            case $run in
                proxy:*) row_or_failed "$run" 11 "${run#proxy:}" "" ;;
            esac
        done
    fi
    if ((HAVE_TLS)); then
        echo
        echo "TLS on this host (no \`tls\` ULP, so no kTLS: both servers encrypt in user space): the same self-signed P-256 certificate, TLS 1.3, \`curl -k --http1.1\`, $N_DOWNLOADS x 1 GiB:"
        echo
        echo "| server | config | negotiated (curl -v) | body send path (ferry: from its counters) | 1 GiB MiB/s | CPU s/GiB |"
        echo "|---|---|---|---|---:|---:|"
        for run in "${RUNS[@]}"; do
            case $run in
                tls:*) row_or_failed "$run" 6 "${run#tls:}" "" ;;
            esac
        done
        if [[ -f $WORK/results/tls:ferry/cipher && -f $WORK/results/tls:nginx/cipher ]] &&
            ! cmp -s "$WORK/results/tls:ferry/cipher" "$WORK/results/tls:nginx/cipher"; then
            echo
            echo "**The two servers negotiated different ciphers: the TLS rows do not compare like with like.**"
        fi
    fi
    ((HAVE_CACHE == 0)) || cache_report
    for suite in "${SUITE_RUNS[@]}"; do
        echo
        echo "\`$(suite_cmd "$suite" | sed "s|$ROOT/||")\` (rounds interleaved, medians at the end):"
        echo
        echo '```'
        cat "$WORK/suites/$suite"
        echo '```'
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
