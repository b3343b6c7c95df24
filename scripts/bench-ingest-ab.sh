#!/usr/bin/env bash
# Before/after ingest benchmark in one run (issue 13): two `skyline` binaries, interleaved, so
# both see the same machine load. Usage: scripts/bench-ingest-ab.sh BEFORE AFTER [REPEATS]
# Optional: MIMALLOC=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 also runs AFTER with it
# preloaded (redis-server and redis-benchmark must not inherit it: put shims that unset
# LD_PRELOAD first in PATH).
set -euo pipefail
before=$1 after=$2 repeats=${3:-2}
big=(bench ingest --metrics 100000 --points 3000000 --connections 1)
small=(bench ingest --metrics 10000 --points 2000000)
run() {
  local label=$1
  shift
  echo "=== $label (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  "$@" 2>/dev/null | grep -v '^rss'
}
run after-24h "$after" bench ingest --metrics 10000 --points-per-metric 1440
for _ in $(seq "$repeats"); do
  run before-100k "$before" "${big[@]}"
  run after-100k "$after" "${big[@]}"
  [ -n "${MIMALLOC:-}" ] && run after-100k-mimalloc env LD_PRELOAD="$MIMALLOC" "$after" "${big[@]}"
  run before-10k "$before" "${small[@]}"
  run after-10k "$after" "${small[@]}"
  [ -n "${MIMALLOC:-}" ] && run after-10k-mimalloc env LD_PRELOAD="$MIMALLOC" "$after" "${small[@]}"
done
