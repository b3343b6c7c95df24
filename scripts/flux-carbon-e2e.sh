#!/usr/bin/env bash
# End-to-end check of flux against the real carbon-cache (Graphite's whisper writer).
#
#   scripts/flux-carbon-e2e.sh            # from the repository root; prints PASS or FAIL
#
# What it does, in a scratch directory ($WORK, default /tmp/skyline-flux-e2e):
#  1. creates a Python venv with carbon and whisper (`pip install carbon whisper`, ~1 min the
#     first time; reused afterwards; set VENV=/path to use another one);
#  2. starts carbon-cache on free ports (pickle receiver = flux's carbon_pickle_addr);
#  3. builds and starts `skyline run` (release) with a managed Redis, an API key and the HTTP
#     server on a free port, all through SKYLINE__* overrides of conf/skyline.toml;
#  4. sends datapoints with GET, a JSON batch and populate_metric, and checks that whisper files
#     appear and hold the values (whisper-fetch.py);
#  5. stops carbon-cache, sends more datapoints (flux holds them), starts carbon-cache again and
#     checks that those datapoints reach whisper too (nothing lost while carbon was down).
# Everything it started is stopped on exit (by PID). Needs python3 (with venv), curl,
# redis-server and cargo. KEEP=1 keeps $WORK for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-/tmp/skyline-flux-e2e}
VENV=${VENV:-$WORK/venv}
KEY=e2e-flux-key-0123456789
rm -rf "$WORK/storage" "$WORK/data" "$WORK/conf" "$WORK"/*.log
mkdir -p "$WORK/conf" "$WORK/storage/whisper" "$WORK/storage/log" "$WORK/data"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK/storage" "$WORK/data"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- skyline log (errors)"; grep -a ERROR "$WORK/skyline.log" | tail -20 || true; echo "--- carbon log"; tail -20 "$WORK"/carbon*.log || true; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

if [ ! -x "$VENV/bin/carbon-cache.py" ]; then
  echo "creating $VENV with carbon and whisper"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q carbon whisper
fi

LINE=$(free_port); PICKLE=$(free_port); QUERY=$(free_port); HTTP=$(free_port); HPICKLE=$(free_port)
cat > "$WORK/conf/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $WORK/storage
LOCAL_DATA_DIR = $WORK/storage/whisper
LOG_DIR = $WORK/storage/log
PID_DIR = $WORK/storage
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $LINE
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $PICKLE
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $QUERY
ENABLE_UDP_LISTENER = False
MAX_CREATES_PER_MINUTE = inf
MAX_UPDATES_PER_SECOND = inf
ENABLE_LOGROTATION = False
CARBON_METRIC_INTERVAL = 0
EOF
cat > "$WORK/conf/storage-schemas.conf" <<EOF
[default]
pattern = .*
retentions = 60s:7d
EOF

start_carbon() {
  GRAPHITE_ROOT=$WORK "$VENV/bin/carbon-cache.py" --config="$WORK/conf/carbon.conf" --debug start \
    >>"$WORK/carbon.log" 2>&1 &
  CARBON_PID=$!
  pids+=("$CARBON_PID")
  wait_port "$PICKLE" || fail "carbon-cache did not open its pickle port $PICKLE"
}
stop_carbon() {
  kill "$CARBON_PID"; wait "$CARBON_PID" 2>/dev/null || true
  rm -f "$WORK"/storage/*.pid
}

echo "building skyline (release)"
cargo build --release --quiet --bin skyline
BIN=${CARGO_TARGET_DIR:-target}/release/skyline

start_carbon
echo "carbon-cache pickle receiver on 127.0.0.1:$PICKLE"

SKYLINE__FLUX__API_KEYS="[\"$KEY\"]" \
SKYLINE__FLUX__CARBON_PICKLE_ADDR="127.0.0.1:$PICKLE" \
SKYLINE__FLUX__CARBON_RECONNECT_MAX_SECS=1 \
SKYLINE__WEBAPP__BIND="127.0.0.1:$HTTP" \
SKYLINE__HORIZON__PICKLE_BIND="127.0.0.1:$HPICKLE" \
SKYLINE__HORIZON__UDP_BIND= \
SKYLINE__DATA__DIR="$WORK/data" \
SKYLINE__LOGGING__FILE="$WORK/skyline.log" \
  "$BIN" run 2>>"$WORK/skyline.stderr" &
pids+=("$!")
wait_port "$HTTP" || fail "skyline did not open its HTTP port $HTTP"
echo "skyline flux on http://127.0.0.1:$HTTP"

now=$(date +%s)
base=http://127.0.0.1:$HTTP/flux
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/metric_data?metric=e2e.flux.get&value=1.5&timestamp=$now&key=$KEY")
[ "$code" = 204 ] || fail "GET answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "key: $KEY" \
  -d "{\"metrics\": [{\"metric\": \"e2e.flux.batch.a\", \"timestamp\": $now, \"value\": 2}, {\"metric\": \"e2e.flux.batch.b\", \"timestamp\": $now, \"value\": 3}]}" \
  "$base/metric_data_post")
[ "$code" = 204 ] || fail "POST answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "key: $KEY" \
  -d "{\"metric\": \"e2e.flux.history\", \"datapoints\": [[$((now - 7200)), 4], [$((now - 3600)), 5]]}" \
  "$base/populate_metric")
[ "$code" = 204 ] || fail "populate_metric answered $code"

# whisper_has FILE TIMESTAMP VALUE: the file exists and holds VALUE at TIMESTAMP's minute.
whisper_has() {
  local file=$WORK/storage/whisper/$1.wsp ts=$(( $2 / 60 * 60 )) want=$3
  for _ in $(seq 1 150); do
    if [ -f "$file" ] && "$VENV/bin/whisper-fetch.py" --from=$((ts - 60)) --until=$((ts + 60)) "$file" 2>/dev/null \
        | awk -v ts="$ts" -v want="$want" '$1 == ts && $2 != "None" && $2 + 0 == want + 0 { found = 1 } END { exit !found }'; then
      echo "  ok: $1 = $want at $ts"
      return 0
    fi
    sleep 0.2
  done
  fail "$file does not hold $want at $ts"
}
echo "checking whisper files"
whisper_has e2e/flux/get "$now" 1.5
whisper_has e2e/flux/batch/a "$now" 2
whisper_has e2e/flux/batch/b "$now" 3
whisper_has e2e/flux/history $((now - 7200)) 4
whisper_has e2e/flux/history $((now - 3600)) 5

echo "stopping carbon-cache; sending while it is down"
stop_carbon
code=$(curl -s -o /dev/null -w '%{http_code}' -H "key: $KEY" \
  -d "{\"metrics\": [{\"metric\": \"e2e.flux.outage\", \"timestamp\": $((now + 1)), \"value\": 6}]}" \
  "$base/metric_data_post")
[ "$code" = 204 ] || fail "POST while carbon is down answered $code"
sleep 3
[ ! -f "$WORK/storage/whisper/e2e/flux/outage.wsp" ] || fail "outage metric written while carbon was down?"
echo "starting carbon-cache again"
start_carbon
whisper_has e2e/flux/outage $((now + 1)) 6

echo "PASS: flux → carbon-cache → whisper, including a carbon outage"
