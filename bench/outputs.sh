# bench/outputs.sh — sourced by bench/run (section m.): what `--output`
# costs. A 10,000-file / ~1 GiB tree of mixed sizes (a quarter of each file
# random, the rest text, as build outputs go) is captured and restored,
# against `tar -c | zstd -3` and `tar -xf` of an uncompressed tar; one
# 100 MiB output file is restored against `cp` (hyperfine, 20 runs). Each
# other figure is the median of 3 runs (cold cache dir for captures,
# removed tree for restores); peak RSS from /usr/bin/time. BENCH_OUTPUTS=0
# skips it (~3 GiB of disk while it runs, removed after).
#
# Needs from bench/run: $B (cachier), $W (work dir), row, ratio_row.

# timed OUT PREP COMMAND...: run PREP (untimed) then COMMAND, 3 times;
# appends "seconds max_rss_kib" lines to OUT.
timed() {
    local out=$1 prep=$2
    shift 2
    : >"$out"
    for _ in 1 2 3; do
        bash -c "$prep"
        /usr/bin/time -f '%e %M' -a -o "$out" "$@" >/dev/null
    done
}
med_ms() { sort -n -k1 "$1" | awk 'NR == 2 { printf "%.0f", $1 * 1000 }'; }
max_kib() { sort -n -k2 "$1" | awk 'END { print $2 }'; }

bench_outputs() {
    if [ "${BENCH_OUTPUTS:-1}" = 0 ]; then
        row "outputs: restore / capture of a 10,000-file tree" "not measured: BENCH_OUTPUTS=0" "—" "—" "—" "—"
        return
    fi
    log "m. --output: capture and restore of a 10,000-file / 1 GiB tree, one 100 MiB file"
    local O="$W/outputs"
    rm -rf "$O"
    mkdir -p "$O/work"
    cd "$O/work"
    python3 - <<'EOF'
import os, random
random.seed(16)
text = b"".join(b"line %d of a generated build output\n" % i for i in range(40000))
for d in range(100):
    os.makedirs("tree/d%03d" % d)
    for f in range(100):
        i = d * 100 + f
        n = 800 * 1024 if i % 10 == 0 else 4096 * (i % 15 + 1)
        body = os.urandom(n // 4) + (text * (1 + n // len(text)))[: n - n // 4]
        with open("tree/d%03d/f%05d" % (d, f), "wb") as fh:
            fh.write(body)
big = os.urandom(25 << 20) + (text * 60)[: 75 << 20]
os.makedirs("one")
with open("big.ref", "wb") as fh:
    fh.write(big)
EOF
    tar -cf "$O/tree.tar" tree
    export CACHIER_DIR="$O/cache"
    export XDG_CACHE_HOME="$O/xdg"
    local cap=(run --output tree -- true)

    timed "$O/cap.runs" "rm -rf '$O/cache'" "$B" "${cap[@]}"
    timed "$O/tarz.runs" "rm -f '$O/t.zst'" sh -c "tar -cf - tree | zstd -3 -q -o '$O/t.zst'"
    ratio_row "capture 10,000 files / 1 GiB vs tar -c | zstd -3" \
        "$(med_ms "$O/cap.runs")" "$(med_ms "$O/tarz.runs")" "tar | zstd -3" 1.3

    "$B" "${cap[@]}"
    timed "$O/res.runs" "rm -rf '$O/work/tree'" "$B" "${cap[@]}"
    expect_hit "restore of tree" "${cap[@]:1}"
    timed "$O/untar.runs" "rm -rf '$O/work/tree'" tar -xf "$O/tree.tar"
    ratio_row "restore 10,000 files / 1 GiB vs tar -xf (uncompressed tar)" \
        "$(med_ms "$O/res.runs")" "$(med_ms "$O/untar.runs")" "tar -xf" 1.3
    local v met
    for what in cap res; do
        v=$(max_kib "$O/$what.runs")
        met=$(awk -v v="$v" 'BEGIN { print (v <= 32768) ? "yes" : "NO" }')
        row "peak RSS, $([ $what = cap ] && echo capture || echo restore) of the tree (KiB)" \
            "$v KiB" "—" "—" "≤ 32768 KiB" "$met"
    done

    local stored zst
    stored=$("$B" ls --json | python3 -c 'import json,sys; print(max(e["size"] for e in json.load(sys.stdin)))')
    zst=$(stat -c %s "$O/t.zst")
    row "stored size of the tree vs tar | zstd -3" "$stored B" "$zst B" \
        "$(awk -v c="$stored" -v b="$zst" 'BEGIN { printf "%.3f", c / b }')×" "≤ 1.05×" \
        "$(awk -v c="$stored" -v b="$zst" 'BEGIN { print (c <= b * 1.05) ? "yes" : "NO" }')"

    # Tens of ms: /usr/bin/time's 10 ms steps are too coarse, so hyperfine
    # (20 runs each, the file removed before every run).
    "$B" run --output one/big -- cp big.ref one/big
    hf out100 20 2 --prepare "rm -f $O/work/one/big" -- \
        "$B run --output one/big -- cp big.ref one/big" \
        "cp big.ref one/big"
    ratio_row "hit with one 100 MiB output file vs cp" \
        "$(med out100 0)" "$(med out100 1)" "cp" 1.5
    cd "$ROOT"
    rm -rf "$O"
}
