# shellcheck shell=bash
# Sourced by scripts/test: start_redis.

# One throwaway server and one 3-master Redis Cluster on 127.0.0.1, with no
# persistence, for the redis suites; exports CACHIER_TEST_REDIS_URL and
# CACHIER_TEST_REDIS_CLUSTER_URL (comma-separated node URLs). URLs already
# set are used as is.
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
        local port
        port=$(redis_start_node "$REDIS_DIR/single" no) || exit 1
        export CACHIER_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
        echo "== Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port"
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

# redis_start_node DIR CLUSTER: start redis-server in DIR on a free port
# (cluster mode if CLUSTER is yes), wait until it answers, print the port.
redis_start_node() {
    local dir=$1 cluster=$2 port tries=0
    mkdir -p "$dir"
    while :; do
        port=$(free_port)
        if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --cluster-enabled "$cluster" --cluster-config-file "$dir/nodes.conf" \
            >/dev/null 2>&1; then
            local waited=0
            until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
                waited=$((waited + 1))
                [ $waited -lt 100 ] || break
                sleep 0.05
            done
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
                echo "$port"
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
