#!/usr/bin/env bash
# End to end: headless Chromium (Debian's `chromium`), driven over the DevTools protocol by
# dashboard.py, opens the live dashboard of a running `ld replay --out dashboard=ADDR` and
# renders its figures from the Server-Sent Events: while the run goes on the page says
# `running` with requests counted and users active; after it (during --linger) it says `done`
# with the request count of the run's summary report.
#
# Usage: scripts/e2e/dashboard.sh LD_BINARY
# All traffic stays on 127.0.0.1: the target is Python's http.server, bounded to a 6 s run.
set -euo pipefail
LD="${1:?usage: scripts/e2e/dashboard.sh LD_BINARY}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
WORK="$(mktemp -d)"
# The final page's screenshot is kept here.
SHOTS="${SCREENSHOT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/e2e}"
mkdir -p "$SHOTS"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API="$(free_port)"
DASH="$(free_port)"
(cd "$WORK" && exec python3 -m http.server "$API" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$API/" >/dev/null 2>&1 && break; sleep 0.1; done
cat > "$WORK/plan.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 3,
  "spawn_rate": 100, "test_time": 6, "tasks": [{"method": "get", "request_url": "http://127.0.0.1:$API/",
  "name": "home", "think_time": 0.02, "assertions": [{"type": "status_code", "value": 200}]}]}]]}
JSON
"$LD" replay "$WORK/plan.json" -q --no-store --report summary --report-dir "$WORK" \
  --out "dashboard=127.0.0.1:$DASH" --linger 10s &
pids+=($!)
python3 "$(dirname "$0")/dashboard.py" --chromium "$CHROMIUM" --url "http://127.0.0.1:$DASH/" \
  --summary "$WORK/loaddensity-summary.json" --users 3 --work "$WORK" --screenshot "$SHOTS/dashboard.png"
