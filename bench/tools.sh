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

# A free TCP port on 127.0.0.1 (bound and released; the script binds it next).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Writes WORK/nginx.conf: nginx as the bench scripts run it against ferry (2 workers in the
# foreground, sendfile on, tcp_nopush on, access log off, every temp path under WORK), with
# HTTP_LINES added to its http block and SERVER as its one server block.
#   nginx_conf WORK HTTP_LINES SERVER
nginx_conf() {
    local work=$1 http_lines=$2 server=$3
    cat >"$work/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
    $http_lines
    $server
}
CONF
}
