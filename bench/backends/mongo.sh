# shellcheck shell=bash
# Sourced by bench/run (section k): bench_mongo measures the mongo backend on
# a throwaway SecantusDB server (MongoDB-compatible, from PyPI, see
# scripts/servers/mongo.sh) on 127.0.0.1: small-hit latency (whole process),
# a 100 MiB hit to a pipe, the waiters' lag with concurrent callers, and
# dead-owner takeover. The server is Python: its figures are the server's as
# much as cachier's.

# Stop the bench's server (safe to call twice, or with none started).
stop_mongo_bench() {
    if [ -n "${MONGO_BENCH_PID:-}" ]; then
        kill -9 "$MONGO_BENCH_PID" 2>/dev/null || true
        MONGO_BENCH_PID=""
    fi
    [ -z "${MONGO_BENCH_DIR:-}" ] || rm -rf "$MONGO_BENCH_DIR"
}

# mongo_not_measured WHY: every mongo row says so.
mongo_not_measured() {
    local m
    for m in "hit latency, backend mongo, whole process" \
        "100 MiB hit to pipe, backend mongo vs cat (info)" \
        "concurrent callers, backend mongo: executions" \
        "dead-owner takeover, mongo"; do
        row "$m" "not measured: $1" "—" "—" "—" "—"
    done
}

bench_mongo() {
    log "k. mongo: small hit, 100 MiB hit, concurrent waiters, dead-owner takeover"
    # shellcheck source=scripts/servers/mongo.sh
    source "$ROOT/scripts/servers/mongo.sh"
    MONGO_VENV="$ROOT/target/test-servers/mongo-venv"
    declare -F free_port >/dev/null || free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    }
    if ! install_secantus >&2; then
        mongo_not_measured "SecantusDB could not be installed"
        return 0
    fi
    MONGO_BENCH_DIR="$W/mongo-server"
    mkdir -p "$MONGO_BENCH_DIR"
    # Whatever happens, the server goes with the rest at exit.
    trap 'stop_mongo_bench; cleanup' EXIT
    if ! run_secantus "$MONGO_BENCH_DIR" >&2; then
        mongo_not_measured "the SecantusDB server did not start"
        stop_mongo_bench
        trap cleanup EXIT
        return 0
    fi
    MONGO_BENCH_PID=$MONGO_PID
    local url="mongodb://127.0.0.1:$MONGO_PORT/bench"
    local args=(--backend mongo --mongo-url "$url")
    cd "$W"

    # a. small hit, whole process, beside the file store and /bin/true.
    "$B" "${args[@]}" run -- echo hi >/dev/null
    expect_hit "echo hi (mongo)" "${args[@]}" -- echo hi
    #    Pooled through the daemon (the default), and straight to the server.
    hf hitmongo 100 10 -- \
        "$B ${args[*]} run -- echo hi" \
        "$B --cache-dir $W/cache-small run -- echo hi" \
        "/bin/true" \
        "env CACHIER_POOL=0 $B ${args[*]} run -- echo hi"
    local hit file true_ms direct met
    hit=$(med hitmongo 0); file=$(med hitmongo 1); true_ms=$(med hitmongo 2); direct=$(med hitmongo 3)
    met=$(awk -v v="$hit" 'BEGIN { print (v <= 2.5) ? "yes" : "NO" }')
    row "hit latency, backend mongo (SecantusDB, loopback, pooled), whole process" "$hit ms" \
        "$true_ms ms (/bin/true); file $file ms" \
        "$(awk -v c="$hit" -v b="$true_ms" 'BEGIN { printf "%.2f", c / b }')×" "≤ 2.5 ms" "$met"
    row "hit latency, backend mongo (SecantusDB, loopback, CACHIER_POOL=0 via env) (info)" "$direct ms" \
        "$hit ms (pooled)" "$(awk -v c="$direct" -v b="$hit" 'BEGIN { printf "%.2f", c / b }')×" "—" "info"

    # b. 100 MiB hit to a pipe vs cat.
    [ -f "$W/big.bin" ] || head -c 100M /dev/urandom >"$W/big.bin"
    "$B" "${args[@]}" run -- cat big.bin >/dev/null
    expect_hit "cat big.bin (mongo)" "${args[@]}" -- cat big.bin
    hf bighit_mongo 5 1 --output=pipe -- \
        "$B ${args[*]} run -- cat big.bin" \
        "cat big.bin"
    local big cat_ms
    big=$(med bighit_mongo 0); cat_ms=$(med bighit_mongo 1)
    row "100 MiB hit to pipe, backend mongo (SecantusDB, loopback) vs cat (info)" "$big ms" \
        "$cat_ms ms (cat)" "$(awk -v c="$big" -v b="$cat_ms" 'BEGIN { printf "%.2f", c / b }')×" "—" "info"

    # e. concurrent callers of one key: executions, and the waiters' lag
    #    behind the owner's finish.
    local n=32 c="$W/mongo-concurrent" i
    mkdir -p "$c/out"
    cd "$c"
    local ccmd="echo run >> runs.log; sleep 1; date +%s%N > owner_done; echo out"
    for i in $(seq 1 "$n"); do
        (
            "$B" -v "${args[@]}" run -- sh -c "$ccmd" >"out/$i.out" 2>"out/$i.err" || echo "$?" >"out/$i.rc"
            now_us >"out/$i.done"
        ) &
    done
    wait
    local execs bad=0 lagmax lagmed nwait
    execs=$(wc -l <runs.log)
    for i in $(seq 1 "$n"); do
        [ "$(cat "out/$i.out")" = out ] && [ ! -f "out/$i.rc" ] || bad=$((bad + 1))
    done
    read -r lagmax lagmed nwait < <(python3 - "$c" "$n" <<'EOF'
import statistics, sys
c, n = sys.argv[1], int(sys.argv[2])
owner_done_us = int(open(f"{c}/owner_done").read()) / 1e3
lags = [(int(open(f"{c}/out/{i}.done").read()) - owner_done_us) / 1e3
        for i in range(1, n + 1) if "cachier: miss" not in open(f"{c}/out/{i}.err").read()]
print("%.1f %.1f %d" % (max(lags), statistics.median(lags), len(lags)) if lags else "- - 0")
EOF
    )
    met=$([ "$execs" -eq 1 ] && [ "$bad" -eq 0 ] && echo yes || echo NO)
    row "$n concurrent, one key, backend mongo: executions (wrong outputs: $bad)" "$execs" "—" "—" "1" "$met"
    met=$(awk -v v="$lagmed" 'BEGIN { print (v != "-" && v <= 100) ? "yes" : "NO" }')
    row "$n concurrent, backend mongo: waiters' lag behind owner finish, median ($nwait waiters; max $lagmax ms)" \
        "$lagmed ms" "—" "—" "≤ 100 ms (polls ≤ 100 ms apart)" "$met"
    cd "$W"

    # f. dead-owner takeover: bench/run's procedure, on this backend.
    export CACHIER_BACKEND=mongo CACHIER_MONGO_URL="$url"
    if takeover mongo; then
        local ms=${TAKEOVER%% *}
        met=$(awk -v v="$ms" 'BEGIN { print (v ~ /^[0-9.]+$/ && v <= 10000) ? "yes" : "NO" }')
        row "dead-owner takeover, mongo (kill -9 → waiter's command starts)" "$TAKEOVER" "—" "—" \
            "≤ 10 s (6 s lease, 2 s heartbeat)" "$met"
    else
        row "dead-owner takeover, mongo" "not measured: $TAKEOVER_WHY" "—" "—" "≤ 10 s" "—"
    fi
    unset CACHIER_BACKEND CACHIER_MONGO_URL
    cd "$ROOT"
    stop_mongo_bench
    trap cleanup EXIT
}
