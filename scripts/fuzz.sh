#!/usr/bin/env bash
# Runs every cargo-fuzz target of tests/fuzz for a fixed number of executions, on one core,
# under a memory limit, and prints one summary line per target.
#
#   scripts/fuzz.sh [RUNS] [RSS_LIMIT_MB] [TARGET...]
#   RUNS defaults to 1000000, RSS_LIMIT_MB to 512, targets to all four
#   (pickle msgpack plaintext flux_json).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly features: on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them (set here). Built without a sanitizer (`-s none`): the
# decoders are safe Rust, so coverage guidance, overflow checks and debug assertions do the
# work at several times ASan's speed; pass SANITIZER=address to use ASan.
# The checked-in corpus (tests/fuzz/corpus/<target>) is read, never written: new inputs go
# to a scratch directory. A crash leaves its input in tests/fuzz/artifacts/<target>/; copy it
# into the corpus so tests/it/fuzz_corpus.rs replays it in every `cargo test`.
set -euo pipefail

RUNS=${1:-1000000}
RSS_MB=${2:-512}
shift $(( $# > 2 ? 2 : $# ))
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(pickle msgpack plaintext flux_json)
fi
SANITIZER=${SANITIZER:-none}

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build --fuzz-dir tests/fuzz -s "$SANITIZER" >/dev/null

status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$scratch/$t" "tests/fuzz/artifacts/$t"
    log="$scratch/$t.log"
    start=$(date +%s)
    set +e
    cargo fuzz run --fuzz-dir tests/fuzz -s "$SANITIZER" "$t" \
        "$scratch/$t" "tests/fuzz/corpus/$t" -- \
        -runs="$RUNS" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" -max_len=65536 \
        -timeout=10 -print_final_stats=1 \
        -artifact_prefix="tests/fuzz/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - start ))
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    peak=$(grep -m1 'stat::peak_rss_mb' "$log" | awk '{print $2}')
    crashes=$(find "tests/fuzz/artifacts/$t" -type f | wc -l)
    echo "$t: rc=$rc executions=${execs:-?} peak_rss_mb=${peak:-?} artifacts=$crashes seconds=$secs"
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -40 "$log"
    fi
done
exit $status
