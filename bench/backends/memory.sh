# bench_memory: the memory daemon (sourced by bench/run, section k).
# Small hit (echo hi) beside the file store and /bin/true in one hyperfine
# run, and a 100 MiB hit to a pipe against cat. The daemon lives in a
# private runtime dir under $W, is started before the warm-up, registered in
# BG_PIDS (bench/run's EXIT trap kills it should we stop half-way) and
# stopped at the end.
bench_memory() {
    local had_xdg=${XDG_RUNTIME_DIR+1} old_xdg=${XDG_RUNTIME_DIR-} here=$PWD
    local mem=(--backend memory) file=(--cache-dir "$W/cache-mem-file")
    local mhit mfile mtrue bhit bcat
    log "k. memory daemon: small hit vs file and /bin/true; 100 MiB hit vs cat"
    export XDG_RUNTIME_DIR="$W/memory-run"
    mkdir -p "$XDG_RUNTIME_DIR"
    if ! "$B" daemon start --idle-timeout 30m >/dev/null; then
        row "hit latency, backend memory vs file (same run)" "not measured: the daemon did not start" "—" "—" "≤ 1.00×" "—"
        row "100 MiB hit to pipe, backend memory vs cat" "not measured: the daemon did not start" "—" "—" "≤ 1.3×" "—"
        return 0
    fi
    BG_PIDS+=("$(cat "$XDG_RUNTIME_DIR/cachier/memory.pid")")

    "$B" "${mem[@]}" run -- echo hi >/dev/null
    expect_hit "echo hi (memory)" "${mem[@]}" -- echo hi
    "$B" "${file[@]}" run -- echo hi >/dev/null
    expect_hit "echo hi (file)" "${file[@]}" -- echo hi
    hf hitmem 200 20 -- \
        "$B ${mem[*]} run -- echo hi" \
        "$B ${file[*]} run -- echo hi" \
        "/bin/true"
    mhit=$(med hitmem 0); mfile=$(med hitmem 1); mtrue=$(med hitmem 2)
    ratio_row "hit latency, backend memory vs file (same run)" "$mhit" "$mfile" "file" 1.00
    ratio_row "hit latency, backend memory vs /bin/true (same run)" "$mhit" "$mtrue" "/bin/true" 1.25

    cd "$W"
    [ -f big.bin ] || head -c 100M /dev/urandom >big.bin
    "$B" "${mem[@]}" run -- cat big.bin >/dev/null
    expect_hit "cat big.bin (memory)" "${mem[@]}" -- cat big.bin
    hf bighit_mem 10 2 --output=pipe -- \
        "$B ${mem[*]} run -- cat big.bin" \
        "cat big.bin"
    bhit=$(med bighit_mem 0); bcat=$(med bighit_mem 1)
    ratio_row "100 MiB hit to pipe, backend memory (incl. BLAKE3 verify) vs cat" "$bhit" "$bcat" "cat" 1.3

    # Dead-owner takeover: the daemon frees a claim when its owner's
    # connection closes.
    export CACHIER_BACKEND=memory
    if takeover memory; then
        row "dead-owner takeover, memory" "$TAKEOVER" "—" "—" "$TAKEOVER_TARGET" "$TAKEOVER_MET"
    else
        row "dead-owner takeover, memory" "not measured: $TAKEOVER_WHY" "—" "—" "$TAKEOVER_TARGET" "—"
    fi
    unset CACHIER_BACKEND

    "$B" daemon stop >/dev/null || true
    rm -rf "$W/cache-mem-file" "$XDG_RUNTIME_DIR"
    if [ -n "$had_xdg" ]; then export XDG_RUNTIME_DIR="$old_xdg"; else unset XDG_RUNTIME_DIR; fi
    cd "$here"
}
