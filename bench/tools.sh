# shellcheck shell=bash
# Sourced by the bench scripts: installs the Debian packages of the commands a script needs
# when they are missing (as root, with apt-get), so that each script runs on a fresh machine.
#
#   bench_tools NAME CMD:PACKAGE...   e.g. bench_tools h2 h2load:nghttp2-client nginx:nginx-light
#
# Exits with "NAME: CMD not found" when a command is still missing afterwards. Debian's nginx
# package may start its own nginx on :80 from its postinst; it is stopped here, as it would
# only add noise (the scripts run nginx on their own configuration and ports).
bench_tools() {
    local name=$1 pair missing=()
    shift
    PATH=$PATH:/usr/sbin:/sbin
    for pair; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})) && ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "$name: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2; } || true
        if [[ " ${missing[*]} " == *" nginx"* ]]; then
            # systemd's unit where there is one, else the init script (containers, VMs
            # without systemd, where the postinst starts it all the same).
            timeout 30 systemctl stop nginx >/dev/null 2>&1 ||
                timeout 30 service nginx stop >/dev/null 2>&1 || true
        fi
    fi
    for pair; do
        command -v "${pair%%:*}" >/dev/null || { echo "$name: ${pair%%:*} not found" >&2; exit 1; }
    done
}
