#!/usr/bin/env bash
# Recorded-pace benchmark: how close `ld replay --pace recorded` keeps to a recording's
# timing. Not a test: it prints figures. Traffic goes to 127.0.0.1 only.
#
#   A HAR of REQUESTS requests spread over SPAN seconds on CONNECTIONS connections (random
#   gaps, a fixed seed) is written against a threaded Python HTTP server, imported, and
#   replayed with --pace recorded --speed SPEED, ROUNDS times. Printed per round: the wall
#   time beside the planned one (SPAN / SPEED, and the error in percent), and ld's own
#   figures: how late each request started against its scaled offset (p50, p99, max).
#
# Usage: scripts/bench/pace.sh
# Environment:
#   LD_BIN       the ld binary (default: target/release/ld, built here)
#   REQUESTS     requests in the recording (default 400)
#   SPAN         seconds the recording spans (default 10)
#   CONNECTIONS  recorded connections (default 6, as a browser opens)
#   SPEED        replay speed (default 2x)
#   ROUNDS       replays (default 3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REQUESTS="${REQUESTS:-400}"
SPAN="${SPAN:-10}"
CONNECTIONS="${CONNECTIONS:-6}"
SPEED="${SPEED:-2x}"
ROUNDS="${ROUNDS:-3}"
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ -z "${LD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q --release --bin ld)
  LD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ld"
fi

cat > "$work/server.py" <<'PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$work/server.py" > "$work/port" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port="$(cat "$work/port")"

python3 - "$work/rec.har" "$port" "$REQUESTS" "$SPAN" "$CONNECTIONS" <<'PY'
import json, random, sys, datetime
path, port, n, span, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rng = random.Random(7)
offsets = sorted([0.0, span] + [rng.uniform(0, span) for _ in range(n - 2)])
base = datetime.datetime(2026, 3, 1, 10, 0, 0, tzinfo=datetime.timezone.utc)
entries = []
for i, at in enumerate(offsets):
    t = (base + datetime.timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
    entries.append({
        "startedDateTime": t, "time": 2, "connection": str(i % conns),
        "request": {"method": "GET", "url": f"http://127.0.0.1:{port}/r{i}", "httpVersion": "HTTP/1.1",
                    "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
                     "content": {"size": 2, "mimeType": "text/plain", "text": "ok"}, "redirectURL": "",
                     "headersSize": -1, "bodySize": 2},
        "cache": {}, "timings": {"send": 0, "wait": 2, "receive": 0}})
json.dump({"log": {"version": "1.2", "creator": {"name": "bench", "version": "1"}, "entries": entries}}, open(path, "w"))
PY

cd "$work"
"$LD_BIN" import rec.har -o plan.json 2>/dev/null
"$LD_BIN" replay plan.json --pace recorded --speed "$SPEED" --dry-run
planned="$(python3 -c "s='$SPEED'.rstrip('xX'); print($SPAN / float(s))")"
for round in $(seq "$ROUNDS"); do
  start="$(date +%s.%N)"
  "$LD_BIN" replay plan.json --pace recorded --speed "$SPEED" --no-store 2> err.txt >/dev/null || true
  end="$(date +%s.%N)"
  grep 'paced at' err.txt > note.txt || { cat err.txt >&2; exit 1; }
  wall="$(python3 -c "print(f'{$end - $start:.3f}')")"
  err="$(python3 -c "print(f'{($end - $start - $planned) / $planned * 100:+.1f}')")"
  printf 'round %s: wall %s s (process start included), planned %s s, error %s%%\n' \
    "$round" "$wall" "$planned" "$err"
  sed 's/^ld: note: /  /' note.txt
done
