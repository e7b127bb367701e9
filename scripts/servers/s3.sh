# shellcheck shell=bash
# Sourced by scripts/test: start_s3.
#
# The S3 suite runs on moto's server (PyPI `moto[server]`, pinned: 5.2.1
# implements If-None-Match / If-Match on PUT, which single-flight needs),
# a real HTTP server on loopback that also speaks STS (web identity). It
# goes into a venv under target/, reused by later runs.

export S3_VENV=${S3_VENV:-target/test-servers/s3-venv}

# Install moto's server if missing.
install_moto() {
    if [ -x "$S3_VENV/bin/moto_server" ]; then
        return
    fi
    echo "== installing moto[server] 5.2.1 (pip, into $S3_VENV)"
    mkdir -p "$(dirname "$S3_VENV")"
    if ! python3 -m venv "$S3_VENV" >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q python3-venv >/dev/null ||
            { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
        rm -rf "$S3_VENV"
        python3 -m venv "$S3_VENV"
    fi
    local try
    for try in 1 2 3; do
        "$S3_VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.1' && return 0
        echo "== pip install failed (try $try of 3)"
        sleep $((try * 5))
    done
    return 1
}

# Start moto on a free loopback port; sets S3_PORT and S3_PID.
run_moto() {
    local log=$1 tries=0
    while :; do
        S3_PORT=$(free_port)
        "$S3_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$log" 2>&1 &
        S3_PID=$!
        disown "$S3_PID"
        local i
        for i in $(seq 1 100); do
            if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$S3_PORT/moto-api/', timeout=1)" 2>/dev/null; then
                return 0
            fi
            kill -0 "$S3_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$S3_PID" 2>/dev/null || true
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            cat "$log"
            return 1
        fi
    done
}

# A throwaway S3 server for the s3 suite; exports CACHIER_TEST_S3_URL (its
# endpoint: each test makes a bucket of its own). Moto takes any key pair:
# the tests set their own. An URL already set is used as is.
start_s3() {
    if [ -n "${CACHIER_TEST_S3_URL:-}" ]; then
        echo "== S3: using the server in CACHIER_TEST_S3_URL"
        return
    fi
    install_moto || { echo "cannot install moto for the s3 suite"; exit 1; }
    S3_LOG=$(mktemp /tmp/cachier-s3.XXXXXX)
    at_exit 'kill -9 "${S3_PID:-}" 2>/dev/null || true; rm -f "$S3_LOG"'
    run_moto "$S3_LOG" || exit 1
    export CACHIER_TEST_S3_URL="http://127.0.0.1:$S3_PORT"
    echo "== S3 (moto 5.2.1) on 127.0.0.1:$S3_PORT"
}
