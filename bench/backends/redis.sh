# shellcheck shell=bash
# Sourced by bench/run (section k): bench_redis measures the redis backend on
# a throwaway redis-server it starts on 127.0.0.1 (no persistence, in a
# mktemp dir, killed on return or exit): small-hit latency, a 100 MiB hit to
# a pipe against cat, 64 concurrent callers of one key (executions, waiters'
# lag), and dead-owner takeover (lease 6 s, heartbeat 2 s, poll 0.5 s).
# Uses bench/run's helpers: hf, med, row, ratio_row, expect_hit, takeover,
# now_us, log, apt_install, $B, $W.

REDIS_BENCH_DIR=""
redis_bench_stop() {
    if [ -n "$REDIS_BENCH_DIR" ]; then
        [ -f "$REDIS_BENCH_DIR/redis.pid" ] && kill -9 "$(cat "$REDIS_BENCH_DIR/redis.pid")" 2>/dev/null
        rm -rf "$REDIS_BENCH_DIR"
        REDIS_BENCH_DIR=""
    fi
    return 0
}

# redis_bench_start: sets REDIS_BENCH_URL, or returns 1 with the reason in REDIS_BENCH_WHY.
redis_bench_start() {
    local port tries=0
    command -v redis-server >/dev/null || apt_install redis-server >/dev/null 2>&1 || true
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        REDIS_BENCH_WHY="no redis-server (apt-get install redis-server)"
        return 1
    fi
    REDIS_BENCH_DIR=$(mktemp -d /tmp/cachier-bench-redis.XXXXXX)
    while :; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$REDIS_BENCH_DIR" --daemonize yes --pidfile "$REDIS_BENCH_DIR/redis.pid" \
            --logfile "$REDIS_BENCH_DIR/redis.log" >/dev/null 2>&1 &&
            wait_until 5 redis-cli -p "$port" ping >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 3 ]; then
            REDIS_BENCH_WHY="redis-server did not start: $(tail -1 "$REDIS_BENCH_DIR/redis.log" 2>/dev/null)"
            return 1
        fi
    done
    REDIS_BENCH_URL="redis://127.0.0.1:$port/0"
    log "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port"
}

bench_redis() {
    local not r d
    log "k. redis: small hit, 100 MiB hit, 64 concurrent, dead-owner takeover"
    # Stop the server whatever happens; bench/run's own clean-up still runs.
    trap 'redis_bench_stop; cleanup' EXIT
    if ! redis_bench_start; then
        not="not measured: $REDIS_BENCH_WHY"
        row "hit latency, backend redis, whole process" "$not" "—" "—" "≤ 1.3 ms" "—"
        row "100 MiB hit to pipe, backend redis vs cat (info)" "$not" "—" "—" "—" "—"
        row "64 concurrent, backend redis: executions" "$not" "—" "—" "1" "—"
        row "dead-owner takeover, redis" "$not" "—" "—" "≤ 10 s" "—"
        redis_bench_stop
        trap cleanup EXIT
        return 0
    fi
    local R=(--backend redis --redis-url "$REDIS_BENCH_URL")
    cd "$W"

    # Small hit, whole process, against /bin/true.
    "$B" "${R[@]}" run -- echo hi >/dev/null
    expect_hit "echo hi (Redis)" "${R[@]}" -- echo hi
    # Pooled through the daemon (the default), and straight to the server.
    hf hit_redis 200 20 -- "$B ${R[*]} run -- echo hi" "/bin/true" \
        "env CACHIER_POOL=0 $B ${R[*]} run -- echo hi"
    local RHIT RTRUE RDIRECT met
    RHIT=$(med hit_redis 0); RTRUE=$(med hit_redis 1); RDIRECT=$(med hit_redis 2)
    met=$(awk -v v="$RHIT" 'BEGIN { print (v <= 1.3) ? "yes" : "NO" }')
    row "hit latency, backend redis (loopback, pooled), whole process" "$RHIT ms" "$RTRUE ms (/bin/true)" \
        "$(awk -v c="$RHIT" -v b="$RTRUE" 'BEGIN { printf "%.2f", c / b }')×" "≤ 1.3 ms" "$met"
    row "hit latency, backend redis (loopback, CACHIER_POOL=0 via env) (info)" "$RDIRECT ms" \
        "$RHIT ms (pooled)" "$(awk -v c="$RDIRECT" -v b="$RHIT" 'BEGIN { printf "%.2f", c / b }')×" "—" "info"

    # 100 MiB hit to a pipe (1 MiB chunks into a local temp file, verified, sent).
    [ -f big.bin ] || head -c 100M /dev/urandom >big.bin
    "$B" "${R[@]}" run -- cat big.bin >/dev/null
    expect_hit "cat big.bin (Redis)" "${R[@]}" -- cat big.bin
    hf bighit_redis 5 1 --output=pipe -- "$B ${R[*]} run -- cat big.bin" "cat big.bin"
    local BR BC
    BR=$(med bighit_redis 0); BC=$(med bighit_redis 1)
    row "100 MiB hit to pipe, backend redis (loopback) vs cat (info)" "$BR ms" "$BC ms (cat)" \
        "$(awk -v c="$BR" -v b="$BC" 'BEGIN { printf "%.2f", c / b }')×" "—" "info"

    # 64 concurrent callers of one key: as section e, on Redis.
    local N=64 C="$W/concurrent-redis" i
    mkdir -p "$C/out"
    cd "$C"
    local CCMD='echo run >> runs.log; sleep 1; date +%s%N > owner_done; echo out'
    for i in $(seq 1 "$N"); do
        (
            "$B" "${R[@]}" -v run -- sh -c "$CCMD" >"out/$i.out" 2>"out/$i.err" || echo "$?" >"out/$i.rc"
            now_us >"out/$i.done"
        ) &
        BG_PIDS+=("$!")
    done
    wait
    BG_PIDS=()
    local EXECS BAD=0 LAGMAX LAGMED NWAIT
    EXECS=$(wc -l <runs.log)
    for i in $(seq 1 "$N"); do
        [ "$(cat "out/$i.out")" = out ] && [ ! -f "out/$i.rc" ] || BAD=$((BAD + 1))
    done
    read -r LAGMAX LAGMED NWAIT < <(python3 - "$C" "$N" <<'EOF'
import statistics, sys
c, n = sys.argv[1], int(sys.argv[2])
owner_done_us = int(open(f"{c}/owner_done").read()) / 1e3
lags = []
for i in range(1, n + 1):
    if "cachier: miss" in open(f"{c}/out/{i}.err").read():
        continue
    lags.append((int(open(f"{c}/out/{i}.done").read()) - owner_done_us) / 1e3)
print("%.1f %.1f %d" % (max(lags), statistics.median(lags), len(lags)) if lags else "- - 0")
EOF
    )
    met=$([ "$EXECS" -eq 1 ] && [ "$BAD" -eq 0 ] && echo yes || echo NO)
    row "$N concurrent, one key, backend redis: executions (wrong outputs: $BAD)" "$EXECS" "—" "—" "1" "$met"
    met=$(awk -v v="$LAGMAX" 'BEGIN { print (v != "-" && v <= 100) ? "yes" : "NO" }')
    row "$N concurrent, backend redis: waiters' lag behind owner finish, max ($NWAIT waiters)" "$LAGMAX ms" "—" "—" "≤ 100 ms" "$met"
    met=$(awk -v v="$LAGMED" 'BEGIN { print (v != "-" && v <= 100) ? "yes" : "NO" }')
    row "$N concurrent, backend redis: waiters' lag, median" "$LAGMED ms" "—" "—" "≤ 100 ms" "$met"
    cd "$W"

    # Dead-owner takeover: bench/run's procedure with the backend by environment.
    export CACHIER_BACKEND=redis CACHIER_REDIS_URL="$REDIS_BENCH_URL"
    if takeover redis; then
        # takeover's own verdict is for "at once" backends (≤ 10 ms): judge the lease bound.
        d=${TAKEOVER%% *}
        met=$(awk -v v="$d" 'BEGIN { print (v ~ /^[0-9.]+$/ && v <= 10000) ? "yes" : "NO" }')
        row "dead-owner takeover, redis (lease 6 s, heartbeat 2 s, poll 0.5 s)" "$TAKEOVER" "—" "—" "≤ 10 s" "$met"
    else
        r=$TAKEOVER_WHY
        row "dead-owner takeover, redis" "not measured: $r" "—" "—" "≤ 10 s" "—"
    fi
    unset CACHIER_BACKEND CACHIER_REDIS_URL
    redis_bench_stop
    trap cleanup EXIT
}
