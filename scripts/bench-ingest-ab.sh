#!/usr/bin/env bash
# Before/after ingest benchmark in one run (issue 13): two `skyline` binaries, interleaved, so
# both see the same machine. Usage: scripts/bench-ingest-ab.sh BEFORE AFTER [REPEATS]
# On a machine shared with other jobs, run it as root: it then runs each benchmark at nice -20
# with the kernel's autogroup scheduling off for the run (with autogroup on, nice only orders
# processes within one session and the other sessions' builds still take half the CPU).
set -euo pipefail
before=$1 after=$2 repeats=${3:-2}
big=(bench ingest --metrics 100000 --points 3000000 --connections 1)
small=(bench ingest --metrics 10000 --points 2000000)
# shellcheck source=scripts/quiet-bench.sh
. "$(dirname "$0")/quiet-bench.sh"
run() {
  local label=$1
  shift
  echo "=== $label (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  "${prio[@]}" "$@" 2>/dev/null | grep -v '^rss'
}
run after-24h "$after" bench ingest --metrics 10000 --points-per-metric 1440
for _ in $(seq "$repeats"); do
  run before-100k "$before" "${big[@]}"
  run after-100k "$after" "${big[@]}"
  run before-10k "$before" "${small[@]}"
  run after-10k "$after" "${small[@]}"
done
