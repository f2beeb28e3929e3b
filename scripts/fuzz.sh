#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (cargo-fuzz / libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 20; about 3-4 minutes in all with a cold build)
#
# Builds every target in fuzz/, then runs each for SECONDS_PER_TARGET, starting from a copy of
# its committed seeds (fuzz/seeds/TARGET/) in a temporary corpus, so nothing generated lands in
# the tree except a crash's input in fuzz/artifacts/TARGET/ (git-ignored). Exits non-zero if any
# target crashed, panicked, timed out or ran out of memory, and prints the input as hex.
#
# Sanitizer: none by default. The targets and ferry's parsers are safe Rust, and without
# AddressSanitizer the cold build is faster and each target runs 3-5 times as many inputs.
# FUZZ_SANITIZER=address scripts/fuzz.sh 300 is the deeper run (it also checks the unsafe code
# inside dependencies such as httparse). Overflow checks and debug assertions are on either way.
# Targets run FUZZ_JOBS at a time (default: one per core), each on one core.
#
# Needs a nightly toolchain (fuzz/rust-toolchain.toml selects it) and cargo-fuzz, which it
# installs when missing. Without nightly it skips with a warning, except under CI=true, where
# that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-20}
sanitizer=${FUZZ_SANITIZER:-none}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]  (a positive integer, default 20)" >&2
    exit 2
fi

# The cargo-fuzz release this was written against; any later 0.13.x works too.
cargo_fuzz_version=0.13.2
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# Never let rustup try to download a toolchain: report a missing one instead.
export RUSTUP_AUTO_INSTALL=0

# --- nightly: fuzz/rust-toolchain.toml must resolve to an installed nightly ---
if ! toolchain_rustc=$(cd fuzz && rustc --version 2>&1) || [[ $toolchain_rustc != *nightly* ]]; then
    msg="fuzz: no nightly Rust toolchain (fuzz/rust-toolchain.toml asks for \"nightly\"; rustc in fuzz/ says: ${toolchain_rustc%%$'\n'*})."
    msg+=" Install it with: rustup toolchain install nightly --profile minimal"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $msg" >&2
        exit 1
    fi
    echo "SKIP: $msg" >&2
    exit 0
fi
echo "fuzz: toolchain $toolchain_rustc"

# --- cargo-fuzz ---
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
    # Built with the project's pinned stable toolchain (from the repository root).
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
echo "fuzz: $(cargo fuzz --version)"

cd fuzz
mapfile -t targets < <(cargo fuzz list)
if [ ${#targets[@]} -eq 0 ]; then
    echo "FAIL: fuzz: no fuzz targets found" >&2
    exit 1
fi

started=$SECONDS
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"
echo "fuzz: built in $((SECONDS - started))s"

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")
trap 'kill $(jobs -rp) 2>/dev/null || true; rm -rf "$work"' EXIT

# Each target gets one core for its whole run; with N cores, N targets run at a time.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || jobs=1

# Runs one target into $work/$t.log; its exit code goes to $work/$t.rc.
run_target() {
    local t=$1 corpus="$work/corpus/$1" t0=$SECONDS rc=0
    mkdir -p "$corpus" "artifacts/$t"
    if [ -d "seeds/$t" ]; then
        cp -- seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    find "artifacts/$t" -type f | sort >"$work/$t.before"
    echo "$(find "$corpus" -type f | wc -l)" >"$work/$t.seeds"
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$corpus" -- \
        -max_total_time="$seconds" -max_len=20000 -timeout=10 -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || rc=$?
    echo $((SECONDS - t0)) >"$work/$t.took"
    echo "$rc" >"$work/$t.rc"
}

fuzz_started=$SECONDS
echo "fuzz: running ${#targets[@]} targets for ${seconds}s each, $jobs at a time"
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "fuzz: $t started"
    run_target "$t" &
done
wait || true
echo "fuzz: all targets done in $((SECONDS - fuzz_started))s"

failed=()
summary=()
for t in "${targets[@]}"; do
    log="$work/$t.log"
    rc=$(cat "$work/$t.rc" 2>/dev/null || echo "?")
    took=$(cat "$work/$t.took" 2>/dev/null || echo "?")
    echo
    echo "=== $t: ${seconds}s from $(cat "$work/$t.seeds" 2>/dev/null || echo "?") seed(s), ${took}s wall (with its incremental build) ==="
    # libFuzzer's last status line (#N DONE … cov: … ft: … corp: … exec/s: …) and its stats.
    final=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)
    runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n 1 || true)
    echo "${final:-<no libFuzzer status line>}"
    grep -E '^Done [0-9]+ runs' "$log" || true
    if [ "$rc" != 0 ]; then
        failed+=("$t")
        summary+=("$t: FAILED (exit $rc) after ${runs:-?} runs")
        echo "--- $t FAILED (exit $rc); libFuzzer output (tail): ---"
        tail -n 60 "$log"
        echo "--- $t: panic message ---"
        grep -m 1 -A 1 -E "panicked at|ERROR: libFuzzer: (timeout|out-of-memory)|ERROR: AddressSanitizer" "$log" || echo "(none found; see above)"
        new=$(comm -13 "$work/$t.before" <(find "artifacts/$t" -type f | sort) | sed '/^$/d')
        for a in $new; do
            echo "--- crash input $root/fuzz/$a ($(wc -c <"$a") bytes), hex: ---"
            od -An -tx1 -v "$a" | head -n 80
            echo "reproduce: (cd fuzz && cargo fuzz run --sanitizer $sanitizer $t $a)"
        done
    else
        summary+=("$t: ok, ${runs:-?} runs; ${final:-?}")
    fi
done

echo
echo "=== fuzz summary (${seconds}s per target, $((SECONDS - started))s in all with build) ==="
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAIL: fuzz: ${failed[*]} failed; crash inputs are in fuzz/artifacts/" >&2
    exit 1
fi
echo "fuzz: no crashes"
