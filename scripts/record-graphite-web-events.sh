#!/usr/bin/env bash
# Records a real graphite-web's answers to its events API (`GET /events/get_data`) into
# tests/fixtures/graphite-web-events.json, which tests/it/grafana.rs compares the daemon's
# answers with, field for field.
#
#   scripts/record-graphite-web-events.sh      # from the repository root
#
# Needs graphite-web importable by python3: Debian's package (`apt-get install -y
# --no-install-recommends graphite-web`, what the committed fixture was recorded with) or a
# venv with `pip install graphite-web` (set PYTHON=/path/to/venv/bin/python). It migrates a
# scratch SQLite database under $WORK (default /tmp/skyline-graphite-events), starts
# `django-admin runserver` on a free port, POSTs five events (graphite-web's own
# `POST /events/` API) at fixed times, records the answers of a few queries, and stops the
# server (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-/tmp/skyline-graphite-events}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=tests/fixtures/graphite-web-events.json
rm -rf "$WORK"
mkdir -p "$WORK/log" "$WORK/whisper"
cat > "$WORK/recordsettings.py" <<PY
from graphite.settings import *  # noqa: F401,F403
DATABASES = {'default': {'NAME': '$WORK/graphite.db', 'ENGINE': 'django.db.backends.sqlite3',
                         'USER': '', 'PASSWORD': '', 'HOST': '', 'PORT': ''}}
LOG_DIR = '$WORK/log'
STORAGE_DIR = '$WORK'
WHISPER_DIR = '$WORK/whisper'
STANDARD_DIRS = [WHISPER_DIR]
INDEX_FILE = '$WORK/search_index'
SECRET_KEY = 'recording-only'
TIME_ZONE = 'UTC'
PY
export PYTHONPATH="$WORK" DJANGO_SETTINGS_MODULE=recordsettings
"$PYTHON" -m django migrate --noinput > "$WORK/migrate.log" 2>&1 || { tail -5 "$WORK/migrate.log"; exit 1; }
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PYTHON" -m django runserver "127.0.0.1:$PORT" --noreload > "$WORK/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

"$PYTHON" - "$PORT" "$OUT" <<'PY'
import json, sys, urllib.request, urllib.error

port, out = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
T0 = 1765000000
# The anomalies of tests/it/grafana.rs, as the daemon words them.
events = [
    {"when": T0 - 100, "what": "anomaly: before.window", "tags": ["analyzer", "before.window", "grubbs"],
     "data": "before.window = 1 at 2025-12-06 05:45:00 UTC (analyzer); triggered: grubbs"},
    {"when": T0, "what": "anomaly: web.a", "tags": ["analyzer", "web.a", "grubbs", "ks_test"],
     "data": "web.a = 2 at 2025-12-06 05:46:40 UTC (analyzer); triggered: grubbs, ks_test"},
    {"when": T0 + 60, "what": "anomaly: web.b", "tags": ["mirage", "web.b", "ks_test"],
     "data": "web.b = 3 at 2025-12-06 05:47:40 UTC (mirage); triggered: ks_test"},
    {"when": T0 + 3600, "what": "anomaly: web.a", "tags": ["boundary", "web.a", "greater_than"],
     "data": "web.a = 4.5 at 2025-12-06 06:46:40 UTC (boundary); triggered: greater_than"},
    {"when": T0 + 7300, "what": "anomaly: after.window", "tags": ["analyzer", "after.window", "grubbs"],
     "data": "after.window = 5 at 2025-12-06 07:48:20 UTC (analyzer); triggered: grubbs"},
]
for e in events:
    req = urllib.request.Request(base + "/events/", data=json.dumps(e).encode(), method="POST")
    urllib.request.urlopen(req).read()
w = f"from={T0}&until={T0 + 7200}"
queries = [w, w + "&tags=mirage", w + "&tags=web.a", w + "&tags=mirage%20boundary",
           w + "&tags=mirage%20boundary&set=union", w + "&tags=web.a%20grubbs&set=union",
           w + "&tags=web.a%20grubbs", w + "&tags=web.a%20grubbs&set=intersection",
           f"until={T0 + 7200}"]
responses = []
for q in queries:
    with urllib.request.urlopen(f"{base}/events/get_data?{q}") as r:
        responses.append({"query": q, "status": r.status,
                          "content_type": r.headers.get("Content-Type"),
                          "body": json.loads(r.read())})
import graphite, django
from importlib.metadata import version, PackageNotFoundError
try:
    gw = version("graphite-web")
except PackageNotFoundError:
    gw = "unknown"
doc = {
    "recorded_from": f"a real graphite-web {gw} (Django {django.get_version()}) by scripts/record-graphite-web-events.sh: events created through its POST /events/ API, answers of its GET /events/get_data",
    "events_posted": events,
    "responses": responses,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"recorded {len(responses)} answers into {out}")
PY
