#!/usr/bin/env bash
# End-to-end check of the webapp's Graphite side against a real graphite-web.
#
#   scripts/graphite-web-e2e.sh           # from the repository root; prints PASS or FAIL
#
# What it does, in a scratch directory ($WORK, default /tmp/skyline-graphite-e2e):
#  1. creates a Python venv with graphite-web and whisper (`pip install graphite-web whisper`,
#     a few seconds the first time; reused afterwards; set VENV=/path to use another one),
#     writes graphite-web's local_settings.py (UTC, storage under $WORK) and migrates its
#     SQLite database;
#  2. creates whisper files with known values (60 s steps, a gap of missing points) and starts
#     graphite-web (`django-admin runserver`) on a free port;
#  3. builds and starts `skyline run` (release) with `[graphite] url` pointing at it, a managed
#     Redis and the HTTP server on a free port, through SKYLINE__* overrides;
#  4. checks `/render` (the proxy) answers byte for byte what graphite-web answers, JSON and
#     PNG; `/api?graphite_metric=` returns graphite-web's series as [timestamp, value] pairs
#     without the gap's nulls; an unknown metric gives []; missing parameters give 400; and,
#     once graphite-web is stopped, the API answers 502 and the proxy 502.
# Everything it started is stopped on exit (by PID). Needs python3 (with venv), curl,
# redis-server and cargo. KEEP=1 keeps $WORK for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-/tmp/skyline-graphite-e2e}
VENV=${VENV:-$WORK/venv}
PASSWORD=e2e-webapp-password
rm -rf "$WORK/storage" "$WORK/data" "$WORK"/*.log "$WORK"/*.out
mkdir -p "$WORK/storage/whisper" "$WORK/storage/log/webapp" "$WORK/data"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK/storage" "$WORK/data"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- skyline log (errors)"; grep -a ERROR "$WORK/skyline.log" | tail -20 || true; echo "--- graphite-web log"; tail -20 "$WORK/graphite.log" || true; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

if [ ! -x "$VENV/bin/whisper-create.py" ] || ! "$VENV/bin/python" -c 'import graphite' 2>/dev/null; then
  echo "creating $VENV with graphite-web and whisper"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q graphite-web whisper
fi
GRAPHITE_PKG=$("$VENV/bin/python" -c 'import graphite, os; print(os.path.dirname(graphite.__file__))')
cat > "$GRAPHITE_PKG/local_settings.py" <<EOF
SECRET_KEY = 'skyline-e2e-test-only'
TIME_ZONE = 'UTC'
DEBUG = False
ALLOWED_HOSTS = ['*']
GRAPHITE_ROOT = STORAGE_DIR = '$WORK/storage'
WHISPER_DIR = '$WORK/storage/whisper'
STANDARD_DIRS = [WHISPER_DIR]
LOG_DIR = '$WORK/storage/log/webapp'
INDEX_FILE = '$WORK/storage/index'
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '$WORK/storage/graphite.db'}}
EOF
"$VENV/bin/django-admin" migrate --settings=graphite.settings -v 0 >"$WORK/migrate.log" 2>&1 \
  || { cat "$WORK/migrate.log"; fail "graphite-web migrate"; }

# Whisper data: e2e.web.cpu, one point a minute for the last hour, 10 minutes missing.
now=$(date +%s); end=$(( now / 60 * 60 )); start=$(( end - 3600 ))
mkdir -p "$WORK/storage/whisper/e2e/web"
"$VENV/bin/whisper-create.py" "$WORK/storage/whisper/e2e/web/cpu.wsp" 60:1d >/dev/null
"$VENV/bin/whisper-create.py" "$WORK/storage/whisper/e2e/web/requests_per-sec.wsp" 60:1d >/dev/null
points=(); points2=()
for i in $(seq 0 59); do
  ts=$(( start + i * 60 ))
  if [ "$i" -ge 20 ] && [ "$i" -lt 30 ]; then continue; fi
  points+=("$ts:$(( 40 + i % 7 )).5"); points2+=("$ts:$(( 1000 + i ))")
done
"$VENV/bin/whisper-update.py" "$WORK/storage/whisper/e2e/web/cpu.wsp" "${points[@]}" >/dev/null
"$VENV/bin/whisper-update.py" "$WORK/storage/whisper/e2e/web/requests_per-sec.wsp" "${points2[@]}" >/dev/null

GPORT=$(free_port); HTTP=$(free_port); HPICKLE=$(free_port)
"$VENV/bin/django-admin" runserver "127.0.0.1:$GPORT" --settings=graphite.settings --noreload \
  >"$WORK/graphite.log" 2>&1 &
GRAPHITE_PID=$!
pids+=("$GRAPHITE_PID")
wait_port "$GPORT" || fail "graphite-web did not open port $GPORT"
G=http://127.0.0.1:$GPORT
echo "graphite-web $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("graphite-web"))' 2>/dev/null) on $G"

echo "building skyline (release)"
cargo build --release --quiet --bin skyline
BIN=${CARGO_TARGET_DIR:-target}/release/skyline

SKYLINE__GRAPHITE__URL="$G" \
SKYLINE__WEBAPP__BIND="127.0.0.1:$HTTP" \
SKYLINE__WEBAPP__AUTH_PASSWORD="$PASSWORD" \
SKYLINE__HORIZON__PICKLE_BIND="127.0.0.1:$HPICKLE" \
SKYLINE__HORIZON__UDP_BIND= \
SKYLINE__FLUX__CARBON_PICKLE_ADDR= \
SKYLINE__DATA__DIR="$WORK/data" \
SKYLINE__LOGGING__FILE="$WORK/skyline.log" \
  "$BIN" run 2>>"$WORK/skyline.stderr" &
pids+=("$!")
wait_port "$HTTP" || fail "skyline did not open its HTTP port $HTTP"
S=http://127.0.0.1:$HTTP
echo "skyline webapp on $S"
auth=(-u "admin:$PASSWORD")

# 1. The render proxy answers exactly what graphite-web answers.
q="target=e2e.web.cpu&from=$start&until=$end&format=json"
curl -sf "$G/render?$q" >"$WORK/direct.out" || fail "graphite-web /render"
code=$(curl -s "${auth[@]}" -o "$WORK/proxy.out" -w '%{http_code} %{content_type}' "$S/render?$q")
[ "${code%% *}" = 200 ] || fail "proxy answered $code"
cmp -s "$WORK/direct.out" "$WORK/proxy.out" || fail "proxy body differs from graphite-web's"
case "$code" in *application/json*) ;; *) fail "proxy content type: $code" ;; esac
echo "  ok: /render?format=json identical to graphite-web's ($(wc -c <"$WORK/proxy.out") bytes)"
curl -sf "$G/render?target=e2e.web.cpu&from=$start&until=$end&format=png" >"$WORK/direct-png.out" || fail "graphite-web png"
code=$(curl -s "${auth[@]}" -o "$WORK/proxy-png.out" -w '%{http_code} %{content_type}' "$S/render?target=e2e.web.cpu&from=$start&until=$end&format=png")
[ "$code" = "200 image/png" ] || fail "png proxy answered $code"
head -c 4 "$WORK/proxy-png.out" | grep -q PNG || fail "png proxy body is not a PNG"
echo "  ok: /render?format=png proxied ($(wc -c <"$WORK/proxy-png.out") bytes)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$S/render?$q")
[ "$code" = 401 ] || fail "proxy without credentials answered $code"

# 2. /api?graphite_metric: graphite-web's series as [ts, value] pairs, nulls dropped.
for target in e2e.web.cpu e2e.web.requests_per-sec; do
  code=$(curl -s "${auth[@]}" -o "$WORK/api.out" -w '%{http_code}' \
    "$S/api?graphite_metric=$target&from_timestamp=$start&until_timestamp=$end")
  [ "$code" = 200 ] || fail "/api?graphite_metric=$target answered $code: $(cat "$WORK/api.out")"
  curl -sf "$G/render?target=$target&from=$start&until=$end&format=json" >"$WORK/direct.out"
  python3 - "$WORK/api.out" "$WORK/direct.out" "$target" <<'PY' || fail "/api?graphite_metric=$target does not match graphite-web"
import json, sys
api = json.load(open(sys.argv[1])); direct = json.load(open(sys.argv[2])); target = sys.argv[3]
want = [[ts, v] for v, ts in direct[0]["datapoints"] if v is not None]
assert api["target"] == target, api["target"]
assert api["results"] == want, (api["results"][:3], want[:3])
# 60 steps, 10 left empty; graphite-web's `from` is exclusive, so 49 or 50 remain.
assert len(want) in (49, 50), len(want)
assert all(isinstance(p[0], int) for p in api["results"])
nulls = sum(1 for v, _ in direct[0]["datapoints"] if v is None)
print(f"  ok: /api?graphite_metric={target}: {len(want)} points, {nulls} nulls dropped, [ts, value] order")
PY
done
code=$(curl -s "${auth[@]}" -o "$WORK/api.out" -w '%{http_code}' \
  "$S/api?graphite_metric=e2e.no.such.metric&from_timestamp=$start&until_timestamp=$end")
[ "$code" = 200 ] && grep -q '"results":\[\]' "$WORK/api.out" || fail "unknown metric answered $code $(cat "$WORK/api.out")"
echo "  ok: unknown metric → 200 with results []"
code=$(curl -s "${auth[@]}" -o "$WORK/api.out" -w '%{http_code}' "$S/api?graphite_metric=e2e.web.cpu")
[ "$code" = 400 ] || fail "missing timestamps answered $code"
echo "  ok: missing parameters → 400: $(cat "$WORK/api.out")"

# 3. graphite-web down: 502, not 200 with an empty string.
kill "$GRAPHITE_PID"; wait "$GRAPHITE_PID" 2>/dev/null || true
code=$(curl -s "${auth[@]}" -o "$WORK/api.out" -w '%{http_code}' \
  "$S/api?graphite_metric=e2e.web.cpu&from_timestamp=$start&until_timestamp=$end")
[ "$code" = 502 ] || fail "graphite-web down answered $code"
code=$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' "$S/render?$q")
[ "$code" = 502 ] || fail "proxy with graphite-web down answered $code"
echo "  ok: graphite-web down → 502 (API and proxy)"

echo "PASS: /render proxy and /api?graphite_metric against graphite-web"
