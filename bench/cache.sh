# The cache rows of bench/run.sh (`--only cache`), sourced by it: ferry's [cache] against
# nginx's proxy_cache in front of the same app (tests/app/app.py, its /cacheable/ endpoint,
# which sets Cache-Control from the query):
#   hit:  1 MiB cache hits with wrk (the app is not asked), requests/s and server CPU/request;
#   fill: FILL_COUNT distinct misses of a 64 MiB body, one curl each, server CPU per GiB
#         filled, beside the same downloads when the response is not stored (relay only), so
#         the difference is what storing costs: ferry's tee fill (send_path auto), ferry's
#         buffered fill (send_path buffered), nginx's proxy_cache.
# Uses run.sh's helpers (win_*, bench_wrk, scrape, note, ...); functions here start with cache_.

CACHE_APP_PY=$ROOT/tests/app/app.py
CACHE_FILL_SIZE=$((64 * 1024 * 1024))
if ((QUICK)); then FILL_COUNT=4; else FILL_COUNT=16; fi

cache_start_app() {
    local d=$RES/app i
    mkdir -p "$d"
    "$PYTHON" -u "$CACHE_APP_PY" --log "$d/requests.log" >"$d/app.out" 2>&1 &
    APP_PID=$!
    track "$APP_PID"
    for i in $(seq 100); do
        grep -qx ready "$d/app.out" 2>/dev/null && break
        alive "$APP_PID" || break
        sleep 0.1
    done
    grep -qx ready "$d/app.out" 2>/dev/null || { cat "$d/app.out" >&2; die "the app (tests/app/app.py) did not start"; }
    APP_PORT=$(awk '/^port / { print $2; exit }' "$d/app.out")
    log "app (tests/app/app.py) pid $APP_PID, :$APP_PORT"
}

# requests the app has logged so far
cache_app_requests() { grep -c '"kind":"request"' "$RES/app/requests.log" 2>/dev/null || true; }

cache_start_nginx() { # port
    local port=$1 d=$WORK/nginx-cache user_line=""
    rm -rf "$d"
    mkdir -p "$d/tmp" "$d/cache"
    ((EUID != 0)) || user_line="user root;"
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
    scgi_temp_path $d/tmp/scgi;
    proxy_cache_path $d/cache levels=1:2 keys_zone=bench:16m max_size=8g inactive=1h use_temp_path=off;
    upstream app {
        server 127.0.0.1:$APP_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
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
    wait_ready "http://127.0.0.1:$port/cacheable/ready?path=$WORK/files/f4k.bin" || die "nginx (cache) did not become ready"
    local w
    for w in $(pgrep -P "$SRV_PID"); do track "$w"; done
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "nginx (cache) master $SRV_PID, workers: $SRV_KIDS"
}

cache_start_ferry() { # port admin send_path
    local port=$1 admin=$2 path=$3 d=$WORK/ferry-cache-$3
    rm -rf "$d"
    mkdir -p "$d"
    cat >"$d/ferry.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
access_log = "off"
[admin]
listen = "127.0.0.1:$admin"
[io]
send_path = "$path"
[upstream]
address = "127.0.0.1:$APP_PORT"
[cache]
dir = "$d/cache"
max_size = "8GiB"
EOF
    cp "$d/ferry.toml" "$RES/ferry.toml"
    "$FERRY_BIN" serve --config "$d/ferry.toml" >"$d/ferry.log" 2>&1 &
    SRV_PID=$!
    track "$SRV_PID"
    SRV_LOG=$d/ferry.log
    wait_ready "http://127.0.0.1:$admin/healthz" || { tail -n 30 "$d/ferry.log" >&2; die "ferry (cache) did not become ready"; }
    SRV_KIDS=$(pgrep -P "$SRV_PID" | sort | tr '\n' ' ' || true)
    log "ferry (cache, send_path $path) pid $SRV_PID, http :$port, admin :$admin"
}

# /cacheable/NAME for FILE; stored for an hour when STORE=1, not stored (no freshness) else
cache_url() { # base name file store
    local url="$1/cacheable/$2?path=$3"
    (($4 == 0)) || url+="&h=Cache-Control:max-age%3D3600"
    echo "$url"
}

# FILL_COUNT downloads of distinct URLs, one window each; sets CACHE_S_PER_GIB
cache_fills() { # label base store
    local label=$1 base=$2 store=$3 i url out=$RES/fills.$1 n=$FILL_COUNT
    : >"$out"
    win_reset
    for i in $(seq "$n"); do
        url=$(cache_url "$base" "$label-$i" "$WORK/files/f64m.bin" "$store")
        win_begin
        bg_wait timeout 300 curl -sS -o /dev/null -D "$RES/fill.head" -w '%{size_download}\n' "$url" >>"$out" ||
            die "$CUR_NAME: fill download $label $i failed"
        # ferry commits the object just after the last byte: count the commit in the window
        if ((store)) && [[ $CUR_KIND == ferry ]]; then
            local k
            for k in $(seq 200); do
                [[ $(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '$1 == "ferry_cache_objects" { print $2 }') -ge $((CACHE_OBJECTS0 + i)) ]] && break
                sleep 0.01
            done
        fi
        win_end
        grep -qi '^x-cache: miss' "$RES/fill.head" || note "$CUR_NAME: fill $label $i was not a MISS: $(grep -i '^x-cache' "$RES/fill.head" | tr -d '\r')"
    done
    awk -v f="$CACHE_FILL_SIZE" '$1 != f { bad = 1 } END { exit bad }' "$out" || die "$CUR_NAME: a fill download came back short"
    win_report "fill $label"
    check_server "fill $label"
    CACHE_S_PER_GIB=$(awk -v t="$W_SRV" -v hz="$CLK_TCK" -v n="$n" -v f="$CACHE_FILL_SIZE" 'BEGIN { print (t / hz) / (n * f / 1073741824) }')
    log "$CUR_NAME: $label: $(fmt "$CACHE_S_PER_GIB" 3) s CPU/GiB over $n x 64 MiB"
}

# the cache table: one server with its cache, hit rows then fill rows
run_cache() {
    local port=$1 flavour=${CUR_NAME#cache:} label config hit_url hit_state
    [[ -f $WORK/files/f64m.bin ]] || head -c "$CACHE_FILL_SIZE" "$WORK/files/big.bin" >"$WORK/files/f64m.bin"
    cat "$WORK/files/f64m.bin" >/dev/null
    cache_start_app
    case $flavour in
        nginx)
            cache_start_nginx "$port"
            label=nginx config="proxy_cache (levels=1:2, use_temp_path=off), proxy_cache_lock on, sendfile on"
            ;;
        ferry) cache_start_ferry "$port" "$ADMIN_PORT" auto; label=ferry config="[cache], send_path auto" ;;
        ferry-buffered) cache_start_ferry "$port" "$ADMIN_PORT" buffered; label=ferry config="[cache], send_path buffered" ;;
        *) die "run_cache: unknown flavour $flavour" ;;
    esac
    local base="http://127.0.0.1:$port"
    note_start
    hit_url=$(cache_url "$base" hit "$WORK/files/f1m.bin" 1)
    check_body "$hit_url" "$WORK/files/f1m.bin" "GET (fill)"
    local i
    for i in $(seq 100); do # ferry commits the object just after the response
        hit_state=$(timeout 10 curl -s -D - -o /dev/null "$hit_url" | awk -F': *' 'tolower($1) == "x-cache" { print $2 }' | tr -d '\r')
        [[ $hit_state != HIT ]] || break
        sleep 0.05
    done
    check_body "$hit_url" "$WORK/files/f1m.bin" "GET (hit)"
    [[ $hit_state == HIT ]] || die "$CUR_NAME: the 1 MiB object is not a hit (X-Cache: ${hit_state:-none})"
    log "$CUR_NAME: content check OK (1 MiB fill and hit byte-for-byte), X-Cache: HIT"
    scrape start
    local app0 app1
    app0=$(cache_app_requests)
    bench_wrk hit "$hit_url" "$MIB" "$PROXY_CONNS"
    local rh=$WRK_RPS ph=$WRK_P99 chh=$WRK_CPU
    app1=$(cache_app_requests)
    scrape hit
    CACHE_OBJECTS0=0
    [[ $CUR_KIND != ferry ]] || CACHE_OBJECTS0=$(awk '$1 == "ferry_cache_objects" { print $2 }' "$RES/metrics.hit")
    cache_fills relay "$base" 0
    local relay=$CACHE_S_PER_GIB
    scrape relay
    cache_fills fill "$base" 1
    local fill=$CACHE_S_PER_GIB
    scrape fill
    local paths="n/a"
    if [[ $CUR_KIND == ferry ]]; then
        paths="hit: $(body_paths start hit); fill: $(metric_deltas relay fill ferry_cache_fill_bytes_total | awk '{ match($1, /path="[^"]*"/); printf "%s%s %.0f MiB", s, substr($1, RSTART + 6, RLENGTH - 7), $2 / 1048576; s = ", " }')"
        metric_deltas start fill ferry_cache_requests_total | sed 's/^/    Δ /' >>"$RES/details"
    else
        paths="hit: sendfile from the cache file; fill: read into proxy buffers, written to the cache file from user space"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$config" "$rh" "$ph" "$(fmt "$chh" 1)" "$((app1 - app0))" \
        "$(fmt "$relay" 3)" "$(fmt "$fill" 3)" "$(fmt "$(awk -v a="$fill" -v b="$relay" 'BEGIN { print a - b }')" 3)" "$paths" >"$RES/row"
}

cache_report() {
    echo
    echo "Cache: the same app (tests/app/app.py \`/cacheable/\`, Python) behind both, its responses stored for an hour (\`Cache-Control: max-age=3600\`). Hits: wrk -t$WRK_THREADS -c$PROXY_CONNS -d${WRK_SECS}s on one 1 MiB object (app requests during the run should be 0). Fills: $FILL_COUNT distinct 64 MiB misses, one curl each, server CPU per GiB over one window per download (ferry: until the object is committed); relay only: the same downloads with no Cache-Control (not stored); fill cost = the difference:"
    echo
    echo "| server | config | 1 MiB hit req/s | hit p99 | hit server CPU µs/req | app requests during hits | relay only CPU s/GiB | relay + fill CPU s/GiB | fill cost CPU s/GiB | paths |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    local run
    for run in "${RUNS[@]}"; do
        case $run in
            cache:*) row_or_failed "$run" 10 "${run#cache:}" "" ;;
        esac
    done
}
