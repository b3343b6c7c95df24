#!/usr/bin/env bash
# The endpoint monitor's cost (issue 12), before/after in one run: `skyline bench webapp` with
# monitor levels 0, 2 and 3 in alternating order (--repeat), the daemon pinned to CPU 0 and
# wrk and redis-server to CPU 1, for two `skyline` binaries one after the other, twice.
# Usage: scripts/bench-monitor-ab.sh BEFORE AFTER [REPEAT] [DURATION_SECS]
# As root it runs each benchmark at nice -20 with the kernel's autogroup scheduling off for
# the run (with autogroup on, nice only orders processes within one session).
set -euo pipefail
before=$1 after=$2 repeat=${3:-12} duration=${4:-3}
# shellcheck source=scripts/quiet-bench.sh
. "$(dirname "$0")/quiet-bench.sh"
run() {
  local label=$1
  shift
  echo "=== $label (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  "${prio[@]}" "$@" bench webapp --monitor-levels 0,2,3 --repeat "$repeat" --duration "$duration" 2>/dev/null |
    grep -E 'vs level 0 over|^median of|^load average'
}
for _ in 1 2; do
  run before "$before"
  run after "$after"
done
