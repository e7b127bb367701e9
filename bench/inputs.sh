# bench/inputs.sh — sourced by bench/run (section l.): what the key costs
# when it reads the program's script and walks a 100,000-file tree.
#
# The tree (100 directories of 1,000 random files, 10,737 bytes each: 1 GiB)
# is built once in bench/.work/tree100k (about a minute) and kept while it
# still holds 100,000 files. BENCH_TREE=0 skips the tree rows.
# b3sum (the baseline for a cold hash cache) is cargo-installed into
# bench/.tools when missing.

bench_inputs() {
    log "l. small hit with ./hi.sh as the program (its content in the key) vs echo hi"
    cd "$W"
    export CACHIER_DIR="$W/cache-script"
    export XDG_CACHE_HOME="$W/xdg-script"
    printf '#!/bin/sh\necho hi\n' >"$W/hi.sh"
    chmod +x "$W/hi.sh"
    "$B" run -- echo hi >/dev/null
    "$B" run -- ./hi.sh >/dev/null
    expect_hit "echo hi" -- echo hi
    expect_hit "./hi.sh" -- ./hi.sh
    hf small_script 200 20 -- \
        "$B run -- echo hi" \
        "$B run -- ./hi.sh"
    ratio_row "small hit, ./hi.sh as the program vs echo hi (same run)" \
        "$(med small_script 1)" "$(med small_script 0)" "echo hi hit" 1.05

    if [ "${BENCH_TREE:-1}" = 0 ]; then
        for m in "key --input tree, unchanged, watched vs find" "key --input tree, unchanged, CACHIER_WATCH=0 vs find" \
            "whole hit, run --input tree -- true" \
            "key --input tree after touching one file vs find" "key --input tree, cold hash cache vs b3sum"; do
            row "$m (100k files, 1 GiB)" "not measured: BENCH_TREE=0" "—" "—" "—" "—"
        done
        export XDG_CACHE_HOME="$W/xdg"
        return 0
    fi
    local tree="$W/tree100k" b3="$ROOT/bench/.tools/bin/b3sum"
    if [ ! -x "$b3" ]; then
        log "installing b3sum into bench/.tools"
        cargo install --locked b3sum --root "$ROOT/bench/.tools" >&2
    fi
    if [ "$(find "$tree" -type f 2>/dev/null | wc -l)" -ne 100000 ]; then
        log "building $tree: 100,000 files, 1 GiB (once)"
        rm -rf "$tree"
        python3 - "$tree" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs("%s/d%03d" % (root, d))
    for f in range(1000):
        with open("%s/d%03d/f%06d" % (root, d, d * 1000 + f), "wb") as out:
            out.write(os.urandom(10737))
EOF
        # Files changed within 2 s of a walk are hashed but not remembered.
        sleep 3
    fi
    log "l. key --input over $tree ($(du -sh "$tree" | cut -f1))"
    cd "$W"
    export CACHIER_DIR="$W/cache-tree"
    export XDG_CACHE_HOME="$W/xdg-tree"
    rm -rf "$CACHIER_DIR" "$XDG_CACHE_HOME"
    local files
    files=$("$B" key --explain --input tree100k -- true | awk '/^input tree100k/ { print $4 }')
    [ "$files" = 100000 ] || { echo "bench/run: the key walked $files files, not 100000" >&2; exit 1; }
    local shard
    shard=$(find "$XDG_CACHE_HOME/cachier/hashes" -type f ! -name '.*' | head -1)
    [ -n "$shard" ] || { echo "bench/run: no hash-cache shard after a walk of tree100k" >&2; exit 1; }

    # The daemon's watch (on by default) serves a key over the unchanged
    # tree without a walk; CACHIER_WATCH=0 is the walk with the hash cache
    # (every file stat'ed, none read). Warm-up: the first run starts the
    # daemon and watches, the second is served.
    hf tree_warm 10 3 -- \
        "$B key --input tree100k -- true" \
        "find tree100k -type f" \
        "env CACHIER_WATCH=0 $B key --input tree100k -- true"
    local warm find walked
    warm=$(med tree_warm 0)
    find=$(med tree_warm 1)
    walked=$(med tree_warm 2)
    [ "$("$B" key --explain --input tree100k -- true | grep -c 'watched)$')" = 1 ] ||
        { echo "bench/run: the watch did not serve tree100k" >&2; exit 1; }
    ratio_row "key --input tree (100k files, 1 GiB), unchanged, watched vs find -type f" "$warm" "$find" "find" 3
    ratio_row "key --input tree, unchanged, CACHIER_WATCH=0 (stat every file) vs find -type f" \
        "$walked" "$find" "find" 3

    "$B" run --input tree100k -- true
    expect_hit "run --input tree100k -- true" --input tree100k -- true
    hf tree_hit 10 2 -- "$B run --input tree100k -- true" \
        "env CACHIER_WATCH=0 $B run --input tree100k -- true"
    local hit met
    for i in 0 1; do
        hit=$(med tree_hit $i)
        met=$(awk -v v="$hit" 'BEGIN { print (v <= 100) ? "yes" : "NO" }')
        if [ $i = 0 ]; then
            row "whole hit, run --input tree -- true (100k files, 1 GiB), watched" "$hit ms" "—" "—" "≤ 100 ms" "$met"
        else
            row "whole hit, run --input tree -- true, CACHIER_WATCH=0" "$hit ms" "—" "—" "≤ 100 ms" "$met"
        fi
    done

    # Each timed run starts from the shard as it was (no delta), with one
    # file edited over 2 s before (settled, so its new hash is remembered):
    # it re-reads that file and records its hash, as the first run after an
    # edit does; the watch saw the edit, so the tree is walked.
    cp "$shard" "$W/shard.saved"
    hf tree_touch 10 1 \
        --prepare "sh -c 'cp $W/shard.saved $shard && rm -f $shard.delta && echo edit >> tree100k/d042/f042042 && sleep 2.1'" -- \
        "$B key --input tree100k -- true"
    ratio_row "key --input tree after editing one file vs find -type f" \
        "$(med tree_touch 0)" "$find" "find" 4

    hf tree_cold 5 1 --prepare "rm -rf $XDG_CACHE_HOME/cachier" -- \
        "$B key --input tree100k -- true" \
        "sh -c 'find tree100k -type f -print0 | xargs -0 $b3 >/dev/null'"
    ratio_row "key --input tree, cold hash cache vs find | xargs b3sum" \
        "$(med tree_cold 0)" "$(med tree_cold 1)" "b3sum" 1.5
    export XDG_CACHE_HOME="$W/xdg"
}
