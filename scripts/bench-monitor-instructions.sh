#!/usr/bin/env bash
# The endpoint monitor's cost in instructions per request (issue 12), where the machine has no
# hardware counters (perf stat -e instructions: <not supported> in a VM): `skyline bench
# webapp` under valgrind (cachegrind, no cache simulation; it counts the bench process only:
# the in-process daemon, not wrk or redis-server), per monitor level, at two durations. The
# difference of the two runs' instruction counts over the difference of their requests is the
# cost of one more request (daemon start-up, the warm-up request and shutdown cancel out),
# including the monitor writer's work for it. Requests of both targets (/api?metric= and the
# Now page) are counted together, so the figure is per request of that mix.
# Usage: scripts/bench-monitor-instructions.sh BINARY [LEVELS] [SHORT_SECS] [LONG_SECS]
set -euo pipefail
bin=$1 levels=${2:-0 2 3} short=${3:-3} long=${4:-9}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
measure() { # level secs -> "instructions requests"
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$bin" bench webapp --monitor-levels "$1" --duration "$2" --no-pin >"$tmp/out" 2>"$tmp/err"
  local ir req
  ir=$(grep -E 'I +refs:' "$tmp/err" | tr -d ', ' | sed 's/.*refs://')
  req=$(grep -E 'requests in' "$tmp/out" | sed -E 's/.*: ([0-9]+) requests in.*/\1/' | paste -sd+ | bc)
  echo "$ir $req"
}
for level in $levels; do
  read -r ir1 req1 < <(measure "$level" "$short")
  read -r ir2 req2 < <(measure "$level" "$long")
  echo "level $level: $ir1 instructions / $req1 requests (${short} s), $ir2 / $req2 (${long} s): $(( (ir2 - ir1) / (req2 - req1) )) instructions per request (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
done
