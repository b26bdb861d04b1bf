#!/usr/bin/env bash
# End to end: a receiver built on pip's opentelemetry-proto (protobuf's strict JSON parser, so
# an unknown or misspelt field fails) takes what `ld replay --out otlp=` posts; the request
# count of the last post must equal the run's summary. Loopback only; a venv in a scratch dir.
#
#   scripts/e2e/otlp.sh LD_BIN
set -euo pipefail
LD_BIN="${1:?usage: otlp.sh LD_BIN}"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
W="$(mktemp -d /tmp/ld-otlp-XXXXXX)"
trap 'rm -rf "$W"' EXIT
python3 -m venv "$W/venv"
timeout 300 "$W/venv/bin/pip" install -q opentelemetry-proto >/dev/null
cat > "$W/recv.py" <<'PY'
import http.server, sys, time
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
got = []
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        msg = json_format.Parse(body, ExportMetricsServiceRequest())
        metrics = {m.name: m for m in msg.resource_metrics[0].scope_metrics[0].metrics}
        got.append(sum(p.as_int for p in metrics["loaddensity.requests"].sum.data_points))
        assert metrics["loaddensity.request_latency"].histogram.data_points
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.timeout = 0.5
end = time.time() + 10
while time.time() < end:
    s.handle_request()
print(got[-1] if got else -1)
PY
"$W/venv/bin/python" "$W/recv.py" "$W/port" > "$W/out" &
RECV=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.1; done
# Requests to a closed loopback port: every one fails fast, and each is still counted.
cat > "$W/plan.json" <<'JSON'
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "test_time": 2, "tasks": [{"method": "get", "request_url": "http://127.0.0.1:9/x", "think_time": 0.01}]}]]}
JSON
"$LD_BIN" replay "$W/plan.json" -q --no-store --report summary --report-dir "$W" \
  --out "otlp=http://127.0.0.1:$(cat "$W/port")" || true
wait "$RECV"
total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["requests"])' "$W/loaddensity-summary.json")"
received="$(cat "$W/out")"
echo "[otlp-e2e] summary $total requests, the opentelemetry-proto receiver parsed a last count of $received"
[ "$total" -gt 0 ] && [ "$total" = "$received" ] || { echo "[otlp-e2e] FAIL" >&2; exit 1; }
echo "[otlp-e2e] PASS"
