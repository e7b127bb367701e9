#!/usr/bin/env bash
# bench/shared.sh — compression and signing on shared servers (issue 17):
# 100 MiB of realistic text (`find / -ls`, repeated) stored in Redis and
# PostgreSQL with compression zstd and none: bytes held by the server
# (asked of the server) against raw and `zstd -3`, miss and hit times; and
# a small signed hit against an unsigned one (file store).
#
# Usage: bench/shared.sh [BINARY]   (default: the release binary)
# Servers: CACHIER_BENCH_REDIS_URL and CACHIER_BENCH_PG_URL (a database it
# may create tables in), defaulting to CACHIER_TEST_REDIS_URL and
# CACHIER_TEST_PG_URL; a missing one is reported "not measured".
# Reported, never asserted. Everything goes under bench/.work/shared.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-target/x86_64-unknown-linux-gnu/release/cachier}
B=$(realpath "$B")
REDIS=${CACHIER_BENCH_REDIS_URL:-${CACHIER_TEST_REDIS_URL:-}}
PG=${CACHIER_BENCH_PG_URL:-${CACHIER_TEST_PG_URL:-}}
W=$PWD/bench/.work/shared
rm -rf "$W" && mkdir -p "$W" && cd "$W"
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^CACHIER_' | grep -v BENCH || true)
export CACHIER_DIR=$W/cache
# A database of its own on the server, when the URL may create one.
if [ -n "$PG" ] && psql "$PG" -qc 'DROP DATABASE IF EXISTS cachier_bench' \
    -c 'CREATE DATABASE cachier_bench' >/dev/null 2>&1; then
    PG=${PG%/*}/cachier_bench
fi

now_ms() { date +%s%3N; }
# median_ms N CMD...: the median wall time of N runs, in ms.
median_ms() {
    local n=$1 t0 i
    shift
    for ((i = 0; i < n; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1
        echo $((($(date +%s%N) - t0) / 1000))
    done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

# 100 MiB of a file listing: what a build or an inventory job prints.
while [ "$(stat -c %s big 2>/dev/null || echo 0)" -lt $((100 << 20)) ]; do
    find / -xdev -ls 2>/dev/null | head -c $((40 << 20)) >>big || true
done
truncate -s $((100 << 20)) big
RAW=$(stat -c %s big)
Z3=$(zstd -3 -c big | wc -c)
printf '%-44s %s\n' "raw output" "$RAW bytes"
printf '%-44s %s (%.2fx)\n' "zstd -3" "$Z3 bytes" "$(echo "$RAW / $Z3" | bc -l)"

held_redis() {
    redis-cli -u "$REDIS" --scan --pattern '{bench:*}:c:*' |
        while read -r k; do redis-cli -u "$REDIS" strlen "$k"; done | awk '{s+=$1} END {print s+0}'
}
held_pg() { psql "$PG" -Atc 'SELECT coalesce(sum(length(data)), 0) FROM cachier_chunks'; }

for backend in redis sql; do
    case $backend in
    redis) url=$REDIS; export CACHIER_REDIS_URL=$REDIS CACHIER_REDIS_PREFIX=bench; held=held_redis ;;
    sql) url=$PG; export CACHIER_SQL_URL=$PG; held=held_pg ;;
    esac
    if [ -z "$url" ]; then
        printf '%-44s not measured (no server URL)\n' "$backend"
        continue
    fi
    export CACHIER_BACKEND=$backend
    for comp in zstd none; do
        export CACHIER_COMPRESSION=$comp
        "$B" clear >/dev/null 2>&1
        t0=$(now_ms)
        "$B" run -- cat big >/dev/null
        miss=$(($(now_ms) - t0))
        bytes=$($held)
        hit=$(median_ms 5 "$B" run -- cat big)
        printf '%-44s %s bytes (%.2fx raw, %.3f of zstd -3); miss %s ms, hit %s ms\n' \
            "$backend, compression $comp" "$bytes" "$(echo "$RAW / $bytes" | bc -l)" \
            "$(echo "$bytes / $Z3" | bc -l)" "$miss" "$hit"
    done
    "$B" clear >/dev/null 2>&1
    unset CACHIER_COMPRESSION CACHIER_REDIS_URL CACHIER_REDIS_PREFIX CACHIER_SQL_URL
done

export CACHIER_BACKEND=file
"$B" keygen key >/dev/null 2>&1
KEY=$(cat key)
"$B" run -- echo small >/dev/null
unsigned=$(median_ms 101 "$B" run -- echo small)
"$B" clear >/dev/null
export CACHIER_SIGNING_KEY=$KEY
"$B" run -- echo small >/dev/null
signed=$(median_ms 101 "$B" run -- echo small)
unset CACHIER_SIGNING_KEY
printf '%-44s unsigned %s ms, signed %s ms (+%.2f ms)\n' "small hit, file store" \
    "$unsigned" "$signed" "$(echo "$signed - $unsigned" | bc -l)"
