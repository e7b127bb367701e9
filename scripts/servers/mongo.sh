# shellcheck shell=bash
# Sourced by scripts/test (and bench/backends/mongo.sh): start_mongo.
#
# No MongoDB server package installs here (apt, pip and npm "memory server"
# packages download mongod at run time), so the tests run on SecantusDB, a
# MongoDB-compatible server from PyPI (only pre-releases exist: the version
# is pinned). It goes into a venv under target/, reused by later runs.

# Exported: the restart tests start SecantusDB servers of their own.
export MONGO_VENV=${MONGO_VENV:-target/test-servers/mongo-venv}

# Install SecantusDB (and pymongo, for the readiness check) if missing.
install_secantus() {
    if [ -x "$MONGO_VENV/bin/secantusd-py" ] && [ -x "$MONGO_VENV/bin/python" ]; then
        return
    fi
    echo "== installing SecantusDB 0.7.0b3 (pip, into $MONGO_VENV)"
    mkdir -p "$(dirname "$MONGO_VENV")"
    if ! python3 -m venv "$MONGO_VENV" >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q python3-venv >/dev/null ||
            { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
        rm -rf "$MONGO_VENV"
        python3 -m venv "$MONGO_VENV"
    fi
    local try
    for try in 1 2 3; do
        "$MONGO_VENV/bin/pip" install -q --disable-pip-version-check \
            secantusdb==0.7.0b3 pymongo==4.20.1 && return 0
        echo "== pip install failed (try $try of 3)"
        sleep $((try * 5))
    done
    return 1
}

# Wait until the server on 127.0.0.1:$1 (process $2) answers a ping.
mongo_ping() {
    "$MONGO_VENV/bin/python" - "$1" "$2" <<'PY'
import os, sys, time
import pymongo
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 60
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)  # the server exited (e.g. its port was taken)
    try:
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=500)
        client.admin.command("ping")
        sys.exit(0)
    except pymongo.errors.PyMongoError:
        time.sleep(0.1)
sys.exit(1)
PY
}

# Start a throwaway server on a free loopback port, with its data in $1;
# sets MONGO_PORT and MONGO_PID. The caller stops it (kill -9 is fine).
run_secantus() {
    local dir=$1 tries=0
    while :; do
        MONGO_PORT=$(free_port)
        "$MONGO_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" \
            --storage-path "$dir/data" --log-level WARNING >"$dir/server.log" 2>&1 &
        MONGO_PID=$!
        disown "$MONGO_PID" # no "Killed" notice when it is stopped
        if mongo_ping "$MONGO_PORT" "$MONGO_PID"; then
            return 0
        fi
        kill -9 "$MONGO_PID" 2>/dev/null || true
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            cat "$dir/server.log"
            return 1
        fi
    done
}

# A throwaway server for the mongo suite; exports CACHIER_TEST_MONGO_URL.
# An URL already set is used as is.
start_mongo() {
    if [ -n "${CACHIER_TEST_MONGO_URL:-}" ]; then
        echo "== MongoDB: using the server in CACHIER_TEST_MONGO_URL"
        return
    fi
    install_secantus || { echo "cannot install SecantusDB for the mongo suite"; exit 1; }
    MONGO_DIR=$(mktemp -d /tmp/cachier-mongo.XXXXXX)
    at_exit 'kill -9 "${MONGO_PID:-}" 2>/dev/null || true; rm -rf "$MONGO_DIR"'
    run_secantus "$MONGO_DIR" || exit 1
    export CACHIER_TEST_MONGO_URL="mongodb://127.0.0.1:$MONGO_PORT/cachier"
    echo "== MongoDB-compatible SecantusDB 0.7.0b3 on 127.0.0.1:$MONGO_PORT"
}
