#!/usr/bin/env bash
# Runs every test ferry has: formatting, lints, unit, property and integration tests.
# Installs what the tests need (curl, ss from iproute2, openssl, python3) when missing. Under CI=true a missing tool that
# cannot be installed is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked

# Coverage-guided fuzzing of every parser of untrusted bytes (nightly + cargo-fuzz), briefly.
scripts/fuzz.sh 10

# kTLS cannot be exercised on a kernel without the tls module: these tests boot a Debian
# kernel that has it in a VM (tests/vm/) and run there.
scripts/vm-test.sh
