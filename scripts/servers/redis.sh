# shellcheck shell=bash
# Sourced by scripts/test: start_redis.

# One throwaway server and one 3-master Redis Cluster on 127.0.0.1, with no
# persistence, for the redis suites; exports CACHIER_TEST_REDIS_URL and
# CACHIER_TEST_REDIS_CLUSTER_URL (comma-separated node URLs). The single
# server also speaks TLS on a second port (a throwaway CA signs its
# certificate): CACHIER_TEST_REDIS_TLS_URL, CACHIER_TEST_REDIS_TLS_CA. URLs
# already set are used as is.
start_redis() {
    if [ -n "${CACHIER_TEST_REDIS_URL:-}" ] && [ -n "${CACHIER_TEST_REDIS_CLUSTER_URL:-}" ]; then
        echo "== Redis: using CACHIER_TEST_REDIS_URL and CACHIER_TEST_REDIS_CLUSTER_URL"
        return
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        echo "== installing redis-server (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q redis-server >/dev/null ||
            { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
    fi
    REDIS_DIR=$(mktemp -d /tmp/cachier-redis.XXXXXX)
    at_exit 'redis_stop_all'
    if [ -z "${CACHIER_TEST_REDIS_URL:-}" ]; then
        local ports
        redis_certs "$REDIS_DIR/tls"
        ports=$(redis_start_node "$REDIS_DIR/single" no "$REDIS_DIR/tls") || exit 1
        export CACHIER_TEST_REDIS_URL="redis://127.0.0.1:${ports% *}/0"
        export CACHIER_TEST_REDIS_TLS_URL="rediss://127.0.0.1:${ports#* }/0"
        export CACHIER_TEST_REDIS_TLS_CA="$REDIS_DIR/tls/ca.crt"
        echo "== Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:${ports% *} (TLS on ${ports#* })"
    fi
    if [ -z "${CACHIER_TEST_REDIS_CLUSTER_URL:-}" ]; then
        local i p ports=() urls=() nodes=()
        for i in 1 2 3; do
            p=$(redis_start_node "$REDIS_DIR/node$i" yes) || exit 1
            ports+=("$p")
            nodes+=("127.0.0.1:$p")
            urls+=("redis://127.0.0.1:$p")
        done
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
            >"$REDIS_DIR/create.log" 2>&1 || { cat "$REDIS_DIR/create.log"; exit 1; }
        local tries=0
        for p in "${ports[@]}"; do
            until redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
                tries=$((tries + 1))
                if [ $tries -ge 600 ]; then echo "Redis Cluster never became ok"; exit 1; fi
                sleep 0.05
            done
        done
        CACHIER_TEST_REDIS_CLUSTER_URL=$(IFS=,; echo "${urls[*]}")
        export CACHIER_TEST_REDIS_CLUSTER_URL
        echo "== Redis Cluster (3 masters) on 127.0.0.1:${ports[*]}"
    fi
}

# redis_certs DIR: a throwaway CA and a certificate it signs for
# localhost and 127.0.0.1.
redis_certs() {
    local d=$1
    command -v openssl >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=cachier-test-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=localhost -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
}

# redis_start_node DIR CLUSTER [TLS_DIR]: start redis-server in DIR on a
# free port (cluster mode if CLUSTER is yes; with TLS_DIR also TLS on a
# second port), wait until it answers, print the port (and the TLS port).
redis_start_node() {
    local dir=$1 cluster=$2 tls_dir=${3:-} port tls_port tries=0 tls=()
    mkdir -p "$dir"
    while :; do
        port=$(free_port)
        tls=()
        if [ -n "$tls_dir" ]; then
            tls_port=$(free_port)
            tls=(--tls-port "$tls_port" --tls-cert-file "$tls_dir/server.crt"
                --tls-key-file "$tls_dir/server.key" --tls-auth-clients no)
        fi
        if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --cluster-enabled "$cluster" --cluster-config-file "$dir/nodes.conf" "${tls[@]}" \
            >/dev/null 2>&1; then
            local waited=0
            until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
                waited=$((waited + 1))
                [ $waited -lt 100 ] || break
                sleep 0.05
            done
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
                echo "$port${tls_dir:+ $tls_port}"
                return 0
            fi
        fi
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            cat "$dir/redis.log" >&2
            return 1
        fi
    done
}

# Stop every server start_redis started (by its pid file) and remove its dir.
redis_stop_all() {
    local f
    for f in "$REDIS_DIR"/*/redis.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$REDIS_DIR"
}
