# shellcheck shell=bash
# Sourced by scripts/test and bench/faults.d: `start_servers` installs (if
# missing) and starts on loopback every server the backend suites need, and
# exports their URLs as CACHIER_TEST_* (URLs already set are used as they
# are). What it starts is stopped when the sourcing shell exits.

# Clean-up steps the server scripts register; run in reverse at exit.
CLEANUP=()
at_exit() { CLEANUP+=("$1"); }
run_cleanup() {
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
}
trap run_cleanup EXIT

# A free TCP port on loopback (below 55536: a Redis Cluster node also
# listens on its port + 10000).
free_port() {
    python3 - <<'PY'
import random, socket
while True:
    port = random.randint(20000, 55535)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
PY
}

# Each server: scripts/servers/NAME.sh defines start_NAME, which installs
# the server if missing, starts it on loopback and exports its URL.
for server in scripts/servers/*.sh; do
    # shellcheck source=/dev/null
    source "$server"
done

start_servers() {
    local server
    for server in scripts/servers/*.sh; do
        "start_$(basename "$server" .sh)"
    done
}
