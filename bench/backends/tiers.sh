# bench_tiers: the memory,redis,sql stack (sourced by bench/run, section k).
# A hit served by the memory tier against a plain memory hit (same run), and
# a fill: a hit that only the sql tier holds (memory and redis emptied before
# each run), copied up into redis and memory as it is served. Starts its own
# redis-server (no persistence) and memory daemon under $W; the sql tier is
# SQLite under $W (the same code path as PostgreSQL up to the client).
bench_tiers() {
    local had_xdg=${XDG_RUNTIME_DIR+1} old_xdg=${XDG_RUNTIME_DIR-}
    local port dir="$W/tiers" stack plain tmem tplain tfill tsql
    log "k. tiers: memory,redis,sql hit served by memory vs plain memory; fill from sql"
    if ! command -v redis-server >/dev/null; then
        row "three-tier hit served by memory vs plain memory" "not measured: no redis-server" "—" "—" "≤ 1.10×" "—"
        return 0
    fi
    mkdir -p "$dir/run"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
    wait_until 10 redis-cli -p "$port" ping >/dev/null ||
        { row "three-tier hit served by memory vs plain memory" "not measured: redis-server did not start" "—" "—" "≤ 1.10×" "—"; return 0; }
    BG_PIDS+=("$(cat "$dir/redis.pid")")
    export XDG_RUNTIME_DIR="$dir/run"
    export CACHIER_REDIS_URL="redis://127.0.0.1:$port/0"
    "$B" daemon start --idle-timeout 30m >/dev/null
    BG_PIDS+=("$(cat "$XDG_RUNTIME_DIR/cachier/memory.pid")")
    stack=(--backend memory,redis,sql --cache-dir "$dir/cache")
    plain=(--backend memory --cache-dir "$dir/cache")

    "$B" "${stack[@]}" run -- echo hi >/dev/null
    expect_hit "echo hi (memory,redis,sql)" "${stack[@]}" -- echo hi
    hf tiershit 200 20 -- \
        "$B ${stack[*]} run -- echo hi" \
        "$B ${plain[*]} run -- echo hi"
    tmem=$(med tiershit 0); tplain=$(med tiershit 1)
    ratio_row "three-tier hit served by memory vs plain memory hit (same run)" "$tmem" "$tplain" "memory" 1.10

    # A fill: memory and redis emptied before each run, sql serves.
    "$B" "${stack[@]}" run -- seq 1 20000 >/dev/null
    hf tiersfill 50 5 \
        --prepare "sh -c '$B ${stack[*]} --tier memory clear >/dev/null; $B ${stack[*]} --tier redis clear >/dev/null'" -- \
        "$B ${stack[*]} run -- seq 1 20000" \
        "$B --backend sql --cache-dir $dir/cache run -- seq 1 20000"
    tfill=$(med tiersfill 0); tsql=$(med tiersfill 1)
    row "fill from the sql tier (108 KiB; copied into redis and memory) vs a plain sql hit" \
        "$tfill ms" "$tsql ms (sql hit)" \
        "$(awk -v c="$tfill" -v b="$tsql" 'BEGIN { printf "%.2f", c / b }')×" "—" "info"

    "$B" daemon stop >/dev/null || true
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    unset CACHIER_REDIS_URL
    if [ -n "$had_xdg" ]; then export XDG_RUNTIME_DIR="$old_xdg"; else unset XDG_RUNTIME_DIR; fi
    rm -rf "$dir"
}
