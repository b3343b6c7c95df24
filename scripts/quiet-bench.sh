# Sourced by the A/B benchmark scripts: as root, sets `prio` to run each benchmark at nice -20
# and turns the kernel's autogroup scheduling off until the calling script exits (with
# autogroup on, nice only orders processes within one session, and other sessions' builds
# still take half the CPU). Not root: `prio` is empty and nothing changes.
prio=()
autogroup=/proc/sys/kernel/sched_autogroup_enabled
if [ "$(id -u)" = 0 ]; then
  prio=(nice -n -20)
  if [ -w "$autogroup" ]; then
    was=$(cat "$autogroup")
    echo 0 >"$autogroup"
    trap 'echo "$was" >"$autogroup"' EXIT
  fi
fi
