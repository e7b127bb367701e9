# bench/management.sh — management commands at scale (sourced by bench/run,
# section i2.; issue 19 aim 4): peak RSS and wall time of ls, ls --json,
# clear --stale, gc and export over a file store of 1,000,000 entries, the
# aim being ≤ 64 MiB each. Reported, never asserted.
#
# The store, $W/store1m (~5 GiB of disk: a 4 KiB block per entry), is built
# once and kept while it holds 1,000,000 entries: a dump of a million
# entries made by bench/gen_dump.py from one entry of store100k (each its
# own key and `echo I` command line) piped into `cachier import`, the real
# write path (~2 min on 2 cores; a million precache processes would take an
# hour). gen_dump.py needs Python's blake3 module, pip-installed into a venv
# under bench/.tools/py.
#
# Needs from bench/run: B, W, ROOT, log, row, apt_install, and store100k
# (section i.) for the template entry.

# bench_management: the 1M-entry rows.
bench_management() {
    local store="$W/store1m" n=1000000 py="$ROOT/bench/.tools/py/bin/python" template
    local had_dir=${CACHIER_DIR+1} old_dir=${CACHIER_DIR-}
    log "i2. 1,000,000 entries: peak RSS of ls, ls --json, clear --stale, gc, export"
    export CACHIER_DIR="$store"
    if [ "$(store_entries)" -eq "$n" ]; then
        log "reusing $store ($n entries)"
    else
        if ! "$py" -c 'import blake3' 2>/dev/null; then
            python3 -m venv "$ROOT/bench/.tools/py" >&2 || apt_install python3-venv
            [ -x "$py" ] || python3 -m venv "$ROOT/bench/.tools/py" >&2
            "$ROOT/bench/.tools/py/bin/pip" install --quiet blake3 >&2
        fi
        template=$(find "$W/store100k/entries" -type f -print -quit)
        log "building $store: $n entries imported from a generated dump (two minutes or so, once)"
        rm -rf "$store"
        local started=$SECONDS
        "$py" "$ROOT/bench/gen_dump.py" "$n" "$template" | "$B" import >/dev/null
        log "built in $((SECONDS - started)) s"
        local got
        got=$(store_entries)
        [ "$got" -eq "$n" ] || { echo "bench/run: store1m holds $got entries, not $n" >&2; exit 1; }
    fi
    # The first listing after a change (re)builds the listing index; the
    # rows below are the steady state, as a user listing twice sees it.
    local t0 t1
    t0=$(now_us)
    "$B" ls >/dev/null
    t1=$(now_us)
    row "ls > /dev/null, 1M entries, first listing of this run (builds the index of a new store; info)" \
        "$(awk -v t="$((t1 - t0))" 'BEGIN { printf "%.2f s", t / 1e6 }')" "—" "—" "—" "info"
    local what rss secs find_s
    # The baseline of the wall times: the bare walk of the entries.
    t0=$(now_us)
    find "$store/entries" -type f >/dev/null
    t1=$(now_us)
    find_s="$(awk -v t="$((t1 - t0))" 'BEGIN { printf "%.2f s", t / 1e6 }') (find -type f)"
    for what in "ls" "ls --json" "clear --stale --stale-after 1000d" "gc --max-size 1T" "export"; do
        t0=$(now_us)
        # shellcheck disable=SC2086 # the subcommand's words
        /usr/bin/time -f %M -o "$W/rss.1m" "$B" $what >/dev/null 2>"$W/rss.1m.err" || {
            row "peak RSS (and wall time), $what, 1M entries" "not measured: it failed" "—" "—" "≤ 64 MiB" "—"
            continue
        }
        t1=$(now_us)
        rss=$(tail -1 "$W/rss.1m")
        secs=$(awk -v t="$((t1 - t0))" 'BEGIN { printf "%.2f", t / 1e6 }')
        row "peak RSS (and wall time), $what, 1M entries" \
            "$(awk -v k="$rss" 'BEGIN { printf "%.1f MiB", k / 1024 }') ($secs s)" "$find_s" "—" "≤ 64 MiB" \
            "$(awk -v k="$rss" 'BEGIN { print (k <= 65536) ? "yes" : "NO" }')"
    done
    local left
    left=$(store_entries)
    [ "$left" -eq "$n" ] || { echo "bench/run: a 1M measurement removed entries ($left left)" >&2; exit 1; }
    if [ -n "$had_dir" ]; then export CACHIER_DIR="$old_dir"; else unset CACHIER_DIR; fi
}
