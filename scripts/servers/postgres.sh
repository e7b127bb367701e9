# shellcheck shell=bash
# Sourced by scripts/test: start_postgres.

# The newest PostgreSQL server binaries (Debian keeps them off PATH).
pg_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
        "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# Run as the postgres user when we are root: initdb refuses root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A throwaway cluster on 127.0.0.1 with a password-checked role and TLS (a
# self-signed certificate), for the postgres suite; exports
# CACHIER_TEST_PG_URL. An URL already set is used as is.
start_postgres() {
    if [ -n "${CACHIER_TEST_PG_URL:-}" ]; then
        echo "== PostgreSQL: using the server in CACHIER_TEST_PG_URL"
        return
    fi
    if ! PG_BIN=$(pg_bindir); then
        echo "== installing PostgreSQL (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q postgresql >/dev/null ||
            { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
        PG_BIN=$(pg_bindir)
    fi
    PG_DIR=$(mktemp -d /tmp/cachier-pg.XXXXXX)
    at_exit 'as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"' 
    printf 'secret\n' >"$PG_DIR/pw"
    command -v openssl >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -keyout "$PG_DIR/server.key" -out "$PG_DIR/server.crt" 2>/dev/null
    chmod 600 "$PG_DIR/server.key"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PG_DIR"; fi
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U cachier --pwfile="$PG_DIR/pw" \
        --auth=scram-sha-256 --no-sync -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log"; exit 1; }
    local port tries=0
    while :; do
        port=$(free_port)
        if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
            -o "-h 127.0.0.1 -p $port -k $PG_DIR -c max_connections=400 -c ssl=on -c ssl_cert_file=$PG_DIR/server.crt -c ssl_key_file=$PG_DIR/server.key -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then cat "$PG_DIR/server.log"; exit 1; fi
    done
    export CACHIER_TEST_PG_URL="postgresql://cachier:secret@127.0.0.1:$port/postgres"
    echo "== PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port"
}
