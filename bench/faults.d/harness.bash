# shellcheck shell=bash
# Sourced by the crash and stress parts: run one of tests/cli's fault
# harnesses (faults::KIND::<backend>, one backend at a time) long, against
# the release cachier, and print the figures its tests report as a table.
# Servers come from scripts/servers.bash (CACHIER_TEST_* already set are
# used as they are). FAULTS_SEED replays a run; the parts set the sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/servers.bash
source scripts/servers.bash

# built NAME KIND ARGS...: the path of the executable of target NAME (of
# KIND: bin, test) that `cargo ARGS` builds.
built() {
    local name=$1 kind=$2
    shift 2
    cargo "$@" --message-format=json |
        grep -F "\"kind\":[\"$kind\"]" | grep -F "\"name\":\"$name\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}

# run_harness KIND HEADER: HEADER names the columns after the backend's.
run_harness() {
    local kind=$1 header=$2 bin tests report status=0
    echo "== building cachier (release) and the test harness" >&2
    bin=$(built cachier bin build --release --bin cachier)
    tests=$(built cli test test --test cli --no-run)
    [ -x "$bin" ] && [ -x "$tests" ] || { echo "bench/faults: build failed" >&2; return 1; }
    start_servers >&2
    report=$(mktemp)
    at_exit "rm -f '$report'"
    echo "== $kind: $bin" >&2
    # Only the figures reach the table; the rest (and any failure) is progress.
    CI=true CARGO_BIN_EXE_cachier=$bin FAULTS_REPORT=$report \
        "$tests" "faults::$kind::" --test-threads=1 >&2 || status=$?
    {
        echo "backend	$header"
        cut -f2- "$report"
    } | column -t -s '	'
    return $status
}
