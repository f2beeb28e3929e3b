#!/usr/bin/env bash
# Runs the kTLS integration tests (tests/ktls_vm.rs) inside the kTLS VM of tests/vm/.
#
#   scripts/vm-test.sh [TEST-BINARY-ARGS...]     e.g. scripts/vm-test.sh --exact ktls_off_sends_static_file_with_userspace_tls
#
# The host kernel has no `tls` ULP, so ferry and the test binary are built here (debug) and run in
# a throwaway VM with Debian's 6.1 kernel and the `tls` module loaded (tests/vm/run.sh; its README
# explains the cache and the timings). The repository is shared into the guest at the same
# absolute path, so FERRY_BIN is the host path of target/debug/ferry. The exit status is the test
# binary's; 124 means the VM timed out, 125 that the VM itself failed.
#
# The test binary always gets --include-ignored (the kTLS tests are #[ignore]d so that a host
# `cargo test` shows them as ignored); without arguments also --nocapture --test-threads=1, so
# the evidence lines (TlsTxSw before/after, metric deltas) reach the log.
#
# The first run on a machine builds the VM cache (root, about 1.5-3 min: apt, debootstrap, image).
# Under CI=true a VM that cannot be set up is a failure; elsewhere it is reported as SKIPPED.
# Settings: FERRY_VM_TIMEOUT (seconds, default 1200), FERRY_VM_MEM (MiB, default 2048), and the
# KTLS_VM_* variables of tests/vm/run.sh (KTLS_VM_CACHE, default /var/cache/ktls-vm).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
VM=$ROOT/tests/vm/run.sh
CI=${CI:-false}

say() { echo "vm-test: $*" >&2; }

# The executable of the compiler-artifact whose target is NAME of KIND, from cargo's JSON
# messages on stdin (one object per line; paths here contain no quotes).
executable_of() {
    grep -F '"reason":"compiler-artifact"' |
        grep -F "\"kind\":[\"$2\"]" |
        grep -F "\"name\":\"$1\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
        tail -n 1
}

t0=$(date +%s)
say "building ferry and the ktls_vm test binary (debug)"
ferry_bin=$(cargo build --locked --bin ferry --message-format=json-render-diagnostics |
    executable_of ferry bin)
test_bin=$(cargo test --locked --no-run --test ktls_vm --message-format=json-render-diagnostics |
    executable_of ktls_vm test)
[ -x "$ferry_bin" ] || { say "error: no ferry binary in cargo's output"; exit 1; }
[ -x "$test_bin" ] || { say "error: no ktls_vm test binary in cargo's output"; exit 1; }
say "ferry: $ferry_bin"
say "test:  $test_bin"

# The repository is shared at its own path; a target dir elsewhere (CARGO_TARGET_DIR) too.
shares=(--share "$ROOT")
for dir in "$(dirname "$ferry_bin")" "$(dirname "$test_bin")"; do
    case "$dir" in
    "$ROOT" | "$ROOT"/*) ;;
    *) shares+=(--share "$dir:$dir:ro") ;;
    esac
done

t1=$(date +%s)
if ! "$VM" --setup; then
    if [ "$CI" = true ]; then
        say "error: the kTLS VM could not be set up (see above); under CI this is a failure"
        exit 1
    fi
    say "SKIPPED: the kTLS VM could not be set up on this machine (see above); the kTLS tests did not run"
    exit 0
fi
t2=$(date +%s)

[ $# -gt 0 ] || set -- --nocapture --test-threads=1
# The kTLS tests are #[ignore]d, so that the host's `cargo test` lists them as ignored instead
# of passing them without running them; here every one of them runs.
set -- --include-ignored "$@"
say "running $(basename "$test_bin") $* in the VM"
rc=0
KTLS_VM_QUIET=1 "$VM" "${shares[@]}" \
    --mem "${FERRY_VM_MEM:-2048}" --timeout "${FERRY_VM_TIMEOUT:-1200}" \
    --env "FERRY_BIN=$ferry_bin" --env FERRY_IN_KTLS_VM=1 --env RUST_BACKTRACE=1 --env RUST_LOG \
    -- "$test_bin" "$@" || rc=$?
t3=$(date +%s)

say "build $((t1 - t0))s, VM setup $((t2 - t1))s, VM run $((t3 - t2))s"
case "$rc" in
0) say "kTLS tests passed" ;;
124) say "FAILED: the VM timed out (FERRY_VM_TIMEOUT=${FERRY_VM_TIMEOUT:-1200}s)" ;;
125) say "FAILED: the VM itself failed (exit 125); rerun with KTLS_VM_VERBOSE=1 for the guest console" ;;
*) say "FAILED: the kTLS tests exited with $rc" ;;
esac
exit "$rc"
