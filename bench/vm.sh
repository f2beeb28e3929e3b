#!/usr/bin/env bash
# kTLS benchmark rows: ferry ktls="require" (ktls_sendfile), ferry ktls="off" (tls_buffered)
# and nginx with `ssl_conf_command Options KTLS;` + `sendfile on`, inside the kTLS VM of
# tests/vm (the host kernel has no `tls` ULP). See bench/README.md.
#
#   bench/vm.sh [--rounds R] [--downloads N] [--size MIB] [--generic-crypto] [--no-record] [--max-wait S] [--timeout S]
#
#   --rounds R     rounds (default 3): each runs the three servers in turn, the order reversed
#                  every other round; the table has a row per server and round, then medians
#   --downloads N  measured downloads per server and round (default 1)
#   --size MIB     size of the served file in MiB (default 256)
#   --generic-crypto  do not load aesni_intel / ghash_clmulni_intel in the guest (its initramfs
#                  has no udev to do it), so kTLS uses the kernel's generic C AES-GCM
#   --no-record    print the results section but do not append it to bench/RESULTS.md
#   --max-wait S   before booting the VM, wait up to S seconds (default 120) for the host to
#                  be quiet (other processes < 15% CPU over 2 s); 0 = do not wait
#   --timeout S    limit for the whole VM run (default 5400)
#
# The VM image needs nginx, so this script sets KTLS_VM_EXTRA_PACKAGES=nginx. That changes
# the rootfs cache key of tests/vm/run.sh (a rootfs AND image rebuild, a few minutes the
# first time), so it uses its own cache, KTLS_VM_CACHE=/var/cache/ktls-vm-bench by default,
# instead of the kTLS tests' /var/cache/ktls-vm (which would otherwise be rebuilt back and
# forth between scripts/vm-test.sh and this script).
#
# The guest is TCG-emulated on this host: its CPU numbers are only comparable with each
# other, within one VM run. Progress goes to stderr; the results section (markdown) to
# stdout and, unless --no-record, to bench/RESULTS.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/vm.sh${*:+ $*}"
VM=$ROOT/tests/vm/run.sh
RESULTS_MD=$BENCH_DIR/RESULTS.md
FERRY_BIN=$ROOT/target/release/ferry

DOWNLOADS=1
ROUNDS=3
SIZE_MIB=256
RECORD=1
MAX_WAIT=120
TIMEOUT=5400
CRYPTO=aesni
MEM=${FERRY_VM_MEM:-2048} # the file lives on the guest's tmpfs

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
spread() { # numbers on stdin -> "median [min-max]"
    sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s [%s-%s]", m, a[1], a[NR] }'
}

while (($#)); do
    case $1 in
        --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a number"; ROUNDS=$2; shift ;;
        --downloads) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--downloads needs a number"; DOWNLOADS=$2; shift ;;
        --size) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--size needs a number of MiB"; SIZE_MIB=$2; shift ;;
        --generic-crypto) CRYPTO=generic-crypto ;;
        --no-record) RECORD=0 ;;
        --max-wait) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--max-wait needs a number of seconds"; MAX_WAIT=$2; shift ;;
        --timeout) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--timeout needs a number of seconds"; TIMEOUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

export KTLS_VM_CACHE=${KTLS_VM_CACHE:-/var/cache/ktls-vm-bench}
case " ${KTLS_VM_EXTRA_PACKAGES:-} " in
    *" nginx "*) ;;
    *) export KTLS_VM_EXTRA_PACKAGES="${KTLS_VM_EXTRA_PACKAGES:+$KTLS_VM_EXTRA_PACKAGES }nginx" ;;
esac

WORK=
VM_PID=
cleanup() {
    local rc=$?
    set +e
    trap - INT TERM
    if [[ -n $VM_PID ]] && kill -0 "$VM_PID" 2>/dev/null; then
        # tests/vm/run.sh kills its qemu on SIGTERM
        kill -TERM "$VM_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted (SIGINT): stopping"; exit 130' INT
trap 'log "terminated (SIGTERM): stopping"; exit 143' TERM

proc_ticks() { # "utime+cutime stime+cstime" of one process
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    echo "$((f[11] + f[13])) $((f[12] + f[14]))"
}
machine_ticks() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9, $9; exit }' /proc/stat; }
machine_busy_pct() {
    local b0 t0 b1 t1
    read -r b0 t0 _ < <(machine_ticks)
    sleep 2
    read -r b1 t1 _ < <(machine_ticks)
    echo $(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
}

# ---------------------------------------------------------------- build, image
WORK=$(mktemp -d /var/tmp/ferry-bench-vm.XXXXXX)
chmod 755 "$WORK"
log "building ferry (cargo build --release in $ROOT)"
(cd "$ROOT" && timeout 1800 cargo build --release >&2) || die "cargo build --release failed"
[[ -x $FERRY_BIN ]] || die "no binary at $FERRY_BIN after build"
# a private copy: the guest runs it from the shared work dir, safe from concurrent rebuilds
cp "$FERRY_BIN" "$WORK/ferry"
cp "$BENCH_DIR/vm-guest.sh" "$WORK/vm-guest.sh"
FERRY_VERSION=$("$WORK/ferry" --version 2>&1 | head -1 || true)
if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    [[ -z $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || rev="$rev + uncommitted changes"
    FERRY_VERSION="$FERRY_VERSION (git $rev)"
fi

log "preparing the VM image (KTLS_VM_CACHE=$KTLS_VM_CACHE, KTLS_VM_EXTRA_PACKAGES=$KTLS_VM_EXTRA_PACKAGES)"
t_setup=$SECONDS
timeout 1800 "$VM" --setup >&2 || die "tests/vm/run.sh --setup failed (see above)"
log "VM image ready ($((SECONDS - t_setup)) s)"
ACCEL="$(sed -n 1p "$KTLS_VM_CACHE/accel" 2>/dev/null || echo '?')"
ACCEL_WHY="$(sed -n 3p "$KTLS_VM_CACHE/accel" 2>/dev/null || true)"

# ---------------------------------------------------------------- quiet host, VM run
QUIET_INFO="quiet wait disabled"
if ((MAX_WAIT > 0)); then
    start=$SECONDS
    busy=$(machine_busy_pct)
    while ((busy >= 15 && SECONDS - start < MAX_WAIT)); do
        log "host busy (${busy}% CPU used by other processes), waiting for it to calm down (up to ${MAX_WAIT}s)"
        sleep 5
        busy=$(machine_busy_pct)
    done
    QUIET_INFO="host ${busy}% busy before the boot (waited $((SECONDS - start))s)"
    ((busy < 15)) || log "NOTE: booting on a busy host ($QUIET_INFO)"
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "booting the VM: $ROUNDS rounds of $DOWNLOADS x $SIZE_MIB MiB per server (accel $ACCEL)"
read -r HB0 HT0 HS0 < <(machine_ticks)
read -r MU0 MS0 < <(proc_ticks $$)
t_vm=$SECONDS
mkdir -p "$WORK/out"
VM_RC=0
KTLS_VM_QUIET=1 "$VM" --share "$WORK" --mem "$MEM" --cpus 2 --timeout "$TIMEOUT" \
    -- /bin/bash "$WORK/vm-guest.sh" "$WORK/out" "$WORK/ferry" "$DOWNLOADS" "$SIZE_MIB" "$CRYPTO" "$ROUNDS" &
VM_PID=$!
wait "$VM_PID" || VM_RC=$?
VM_PID=
VM_SECS=$((SECONDS - t_vm))
read -r HB1 HT1 HS1 < <(machine_ticks)
read -r MU1 MS1 < <(proc_ticks $$)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
case $VM_RC in
    0) log "VM run done in ${VM_SECS}s" ;;
    124) log "the VM timed out after ${TIMEOUT}s (--timeout)" ;;
    125) log "the VM itself failed (exit 125); rerun with KTLS_VM_VERBOSE=1 for the guest console" ;;
    *) log "the guest script exited with $VM_RC" ;;
esac
# host CPU during the VM run: this script's reaped children are run.sh and its qemu
HOST_MINE=$((MU1 - MU0 + MS1 - MS0))
HOST_TOTAL=$((HT1 - HT0))
HOST_OTHER=$((HB1 - HB0 - HOST_MINE))
HOST_STEAL=$((HS1 - HS0))
HOST_OTHER_PCT=$((HOST_TOTAL > 0 ? HOST_OTHER * 100 / HOST_TOTAL : 0))

# ---------------------------------------------------------------- report
OUT=$WORK/out
SECTION=$WORK/section.md
{
    echo
    echo "## $(date -u +%F) — kTLS in the VM (bench/vm.sh)"
    echo
    echo "- host: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r) (no \`tls\` ULP); VM: tests/vm/run.sh, accel **$ACCEL**${ACCEL_WHY:+ ($ACCEL_WHY)}, 2 vCPUs, $MEM MiB"
    [[ ! -s $OUT/facts ]] || sed 's/^/- /' "$OUT/facts"
    echo "- ferry: $FERRY_VERSION (release build, run from a copy)"
    echo "- command: \`$CMDLINE\`"
    echo "- host load average before / after: $LOAD_BEFORE / $LOAD_AFTER; $QUIET_INFO; during the ${VM_SECS}s VM run, other host processes used ${HOST_OTHER_PCT}% of the host's CPU (steal $HOST_STEAL ticks)"
    echo "- each server serves one $SIZE_MIB MiB pseudo-random file from the guest's tmpfs over https://127.0.0.1 (TLS 1.3, the same self-signed P-256 certificate); client \`curl -sk --http1.1\` in the guest, on the same 2 vCPUs. One unmeasured download is compared byte for byte with the file while \`strace -c\` counts the server's send syscalls; then $DOWNLOADS measured download(s), server CPU (utime+stime from the guest's /proc; nginx master + workers) over one window per download; $ROUNDS rounds, the three servers in turn in each, the order reversed every other round."
    echo "- **The guest is TCG-emulated** (no KVM on this host): every CPU-heavy step is many times slower than on hardware, and unevenly so (emulated AES-NI, syscalls, copies). Compare the rows below with each other only, never with the host tables or with another VM run."
    echo
    echo "| server | round | config | negotiated (curl -v) | body send path | server send syscalls during the check download (strace -c) | TlsTxSw Δ over $DOWNLOADS download(s) | MiB/s (median) | server CPU s/GiB |"
    echo "|---|---:|---|---|---|---|---:|---:|---:|"
    for round in $(seq "$ROUNDS"); do
        for s in ferry-require ferry-off nginx-ktls; do
            line=$(awk -F'\t' -v s="$s" -v r="$round" '$1 == s && $2 == r' "$OUT/results.tsv" 2>/dev/null | tail -1)
            name=${s%%-*}
            if [[ -z $line || $line == *$'\t'FAILED ]]; then
                echo "| $name | $round | $s | FAILED | | | | | |"
            else
                IFS=$'\t' read -r _ _ cfg cipher path sys txsw mibs cpu <<<"$line"
                echo "| $name | $round | $cfg | $cipher | $path | $sys | $txsw | $mibs | $cpu |"
            fi
        done
    done
    echo
    echo "Medians over the rounds [min-max], and ferry's kTLS row against nginx's:"
    echo
    echo "| server | MiB/s | server CPU s/GiB |"
    echo "|---|---:|---:|"
    for s in ferry-require ferry-off nginx-ktls; do
        awk -F'\t' -v s="$s" '$1 == s && $3 != "FAILED" { print $(NF - 1), $NF }' "$OUT/results.tsv" 2>/dev/null >"$WORK/col.$s"
        [[ -s $WORK/col.$s ]] || { echo "| $s | FAILED | FAILED |"; continue; }
        echo "| $s | $(cut -d' ' -f1 "$WORK/col.$s" | spread) | $(cut -d' ' -f2 "$WORK/col.$s" | spread) |"
    done
    if [[ -s $WORK/col.ferry-require && -s $WORK/col.nginx-ktls ]]; then
        echo
        echo "ktls_sendfile / nginx kTLS, server CPU per GiB: $(awk -v a="$(cut -d' ' -f2 "$WORK/col.ferry-require" | spread | cut -d' ' -f1)" -v b="$(cut -d' ' -f2 "$WORK/col.nginx-ktls" | spread | cut -d' ' -f1)" 'BEGIN { printf "%.2f×", a / b }')"
    fi
    notes=$(cat "$OUT/notes" 2>/dev/null || true)
    ((HOST_OTHER_PCT <= 10)) || notes="${notes:+$notes
}- host disturbed: other processes used ${HOST_OTHER_PCT}% of the host's CPU during the VM run (TCG guest time stretches with it)"
    ((VM_RC == 0)) || notes="${notes:+$notes
}- the VM run exited with $VM_RC (124 timeout, 125 VM failure, else the guest script)"
    if [[ -n $notes ]]; then
        echo
        echo "Notes:"
        echo "$notes"
    fi
    echo
    echo "<details><summary>raw numbers</summary>"
    echo
    echo '```'
    cat "$OUT/details" 2>/dev/null || echo "(no details: the guest script did not run)"
    echo '```'
    echo
    echo "</details>"
} >"$SECTION"

cat "$SECTION"
if ((RECORD)); then
    cat "$SECTION" >>"$RESULTS_MD"
    log "appended to $RESULTS_MD"
fi
if ((VM_RC != 0)) || grep -q $'\tFAILED' "$OUT/results.tsv" 2>/dev/null || [[ ! -s $OUT/results.tsv ]]; then
    die "the kTLS VM run did not complete (exit $VM_RC); see the notes"
fi
