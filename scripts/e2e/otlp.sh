#!/usr/bin/env bash
# End to end, against receivers built on pip's opentelemetry-proto:
#   1. OTLP/HTTP: protobuf's strict JSON parser (an unknown or misspelt field fails) takes what
#      `ld replay --out otlp=http://...` posts;
#   2. OTLP/gRPC: a grpcio server with opentelemetry-proto's MetricsService takes what
#      LoadDensity's `LD_start_opentelemetry_exporter` command sends.
# In each, the request count of the last export must equal the run's summary. Loopback only;
# a venv in a scratch dir.
#
#   scripts/e2e/otlp.sh LD_BIN
set -euo pipefail
LD_BIN="${1:?usage: otlp.sh LD_BIN}"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
W="$(mktemp -d /tmp/ld-otlp-XXXXXX)"
trap 'rm -rf "$W"' EXIT
python3 -m venv "$W/venv"
timeout 300 "$W/venv/bin/pip" install -q opentelemetry-proto grpcio >/dev/null
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
        assert metrics["loaddensity.request.latency"].histogram.data_points
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
echo "[otlp-e2e] OTLP/HTTP PASS"

cat > "$W/recv_grpc.py" <<'PY'
import sys, time
from concurrent import futures
import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as pbg
got, services = [], []
class Metrics(pbg.MetricsServiceServicer):
    def Export(self, request, context):
        rm = request.resource_metrics[0]
        services.append({a.key: a.value.string_value for a in rm.resource.attributes}.get("service.name"))
        metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
        h = metrics["loaddensity.request.latency"].histogram.data_points[0]
        assert sum(h.bucket_counts) == h.count and len(h.bucket_counts) == len(h.explicit_bounds) + 1
        assert metrics["loaddensity.response.size"].sum.is_monotonic
        got.append(sum(p.as_int for p in metrics["loaddensity.requests"].sum.data_points))
        return pb.ExportMetricsServiceResponse()
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
pbg.add_MetricsServiceServicer_to_server(Metrics(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
open(sys.argv[1], "w").write(str(port))
time.sleep(10)
server.stop(0)
print(got[-1] if got else -1, services[-1] if services else "-")
PY
rm -f "$W/port" "$W/loaddensity-summary.json"
"$W/venv/bin/python" "$W/recv_grpc.py" "$W/port" > "$W/out" &
RECV=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.1; done
cat > "$W/plan.json" <<JSON
{"load_density": [
  ["LD_start_opentelemetry_exporter", {"endpoint": "http://127.0.0.1:$(cat "$W/port")", "service_name": "e2e"}],
  ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "test_time": 2, "tasks": [{"method": "get", "request_url": "http://127.0.0.1:9/x", "think_time": 0.01}]}]]}
JSON
"$LD_BIN" replay "$W/plan.json" -q --no-store --report summary --report-dir "$W" 2>"$W/ld-err" || true
wait "$RECV"
total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["requests"])' "$W/loaddensity-summary.json")"
read -r received service < "$W/out"
echo "[otlp-e2e] summary $total requests, the grpcio receiver decoded a last count of $received from service $service"
if grep -q "failed" "$W/ld-err"; then cat "$W/ld-err" >&2; echo "[otlp-e2e] FAIL: an export failed" >&2; exit 1; fi
[ "$total" -gt 0 ] && [ "$total" = "$received" ] && [ "$service" = e2e ] || { echo "[otlp-e2e] FAIL" >&2; exit 1; }
echo "[otlp-e2e] OTLP/gRPC PASS"
