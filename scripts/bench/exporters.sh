#!/usr/bin/env bash
# Live outputs benchmark: `ld replay` with no --out beside the same run with every output on
# (a Prometheus endpoint scraped once a second, InfluxDB line protocol over UDP, StatsD over
# UDP, JSON and CSV sample files, Prometheus remote write and OTLP posted to an HTTP
# receiver, the dashboard) and beside the outputs fed from the aggregator alone
# (Prometheus and InfluxDB), in alternating rounds of one run. A one-worker nginx pinned
# to core 0 answers a 13-byte body from memory; ld is pinned to core 1; the UDP datagrams go
# to a Python listener that reads and counts them, and curl scrapes the endpoint.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only and every step is bounded.
#
# Usage: scripts/bench/exporters.sh
# Environment:
#   LD_BIN     the ld binary (default: target/release/ld, built here)
#   CONNS      users (default 50), DURATION seconds per run (default 10), ROUNDS (default 5)
#   BENCH_DIR  work directory (default /tmp/ld-bench-exporters)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-exporters}"
PORT="${PORT:-18090}"

log() { printf '[bench] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ]; then
  LD_BIN="$ROOT/target/release/ld"
  log "cargo build --release --bin ld"
  (cd "$ROOT" && cargo build --release --bin ld >&2)
fi

NG="$BENCH_DIR/nginx"
mkdir -p "$NG/logs" "$NG/tmp"
cat > "$NG/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $NG/tmp; proxy_temp_path $NG/tmp; fastcgi_temp_path $NG/tmp;
  uwsgi_temp_path $NG/tmp; scgi_temp_path $NG/tmp;
  server {
    listen 127.0.0.1:$PORT backlog=65535;
    location / { default_type text/html; return 200 "hello, bench\n"; }
  }
}
CONF
taskset -c 0 "$NGINX" -c "$NG/nginx.conf" -p "$NG" &
NGINX_PID=$!

# A UDP listener for StatsD and InfluxDB (core 0, beside nginx): reads and counts datagrams.
UDP_PORT_FILE="$BENCH_DIR/udp.port"
rm -f "$UDP_PORT_FILE"
taskset -c 0 python3 - "$UDP_PORT_FILE" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(1)
end = time.time() + 3600
while time.time() < end:
    try:
        s.recv(65536)
    except socket.timeout:
        pass
PY
UDP_PID=$!
# An HTTP receiver for remote write and OTLP (core 0): reads each POST and answers 204.
HTTP_PORT_FILE="$BENCH_DIR/http.port"
rm -f "$HTTP_PORT_FILE"
taskset -c 0 python3 - "$HTTP_PORT_FILE" <<'PY' &
import http.server, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
threading.Timer(3600, s.shutdown).start()
s.serve_forever()
PY
HTTP_PID=$!
cleanup() {
  kill "$NGINX_PID" "$UDP_PID" "$HTTP_PID" 2>/dev/null || true
  wait "$NGINX_PID" "$UDP_PID" "$HTTP_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && [ -s "$UDP_PORT_FILE" ] && [ -s "$HTTP_PORT_FILE" ] && break
  sleep 0.1
done
UDP_PORT="$(cat "$UDP_PORT_FILE")"
HTTP_PORT="$(cat "$HTTP_PORT_FILE")"
PROM_PORT=$((PORT + 1))
DASH_PORT=$((PORT + 2))

cat > "$BENCH_DIR/plan.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 1,
  "tasks": [{"method": "get", "request_url": "http://127.0.0.1:$PORT/", "name": "hello", "assertions": [{"type": "status_code", "value": 200}]}]}]]}
JSON

run() {  # run LABEL [--out ...]: prints requests per second, failures, CPU µs per request
  local label="$1"; shift
  rm -f "$BENCH_DIR/loaddensity-summary.json"
  /usr/bin/time -f '%U %S' -o "$BENCH_DIR/$label.time" taskset -c 1 "$LD_BIN" replay "$BENCH_DIR/plan.json" --users "$CONNS" --spawn-rate 100000 \
    --duration "${DURATION}s" --report summary --report-dir "$BENCH_DIR" -q "$@" >/dev/null 2>"$BENCH_DIR/$label.err" || true
  python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
cpu = sum(float(x) for x in open(sys.argv[2]).read().split()[-2:])
print("%.0f %d %.2f" % (s["run"]["requests_per_s"], s["totals"]["failures"], cpu * 1e6 / max(1, s["totals"]["requests"])))
' "$BENCH_DIR/loaddensity-summary.json" "$BENCH_DIR/$label.time"
}

NONE_BEST=0; ALL_BEST=0; FIG_BEST=0; RATIOS=(); FIG_RATIOS=(); CPU_RATIOS=(); FIG_CPU_RATIOS=()
# CPU time per request: what throughput is on a core of its own, and robust to other load on
# the machine (a busy machine shares core 1, and ld with more threads gets more of it).
cpu_ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }
for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: no outputs, $CONNS users, ${DURATION}s, core 1"
  read -r none none_fail none_cpu < <(run none)
  log "round $round/$ROUNDS: every output on"
  # A scrape each second while the run goes on, and a dashboard page's event stream (on core 0).
  ( sleep 1; taskset -c 0 curl -sN --max-time "$DURATION" "http://127.0.0.1:$DASH_PORT/events" -o /dev/null || true ) &
  ( end=$((SECONDS + DURATION + 2)); while [ $SECONDS -lt $end ]; do
      taskset -c 0 curl -fs "http://127.0.0.1:$PROM_PORT/metrics" -o /dev/null || true; sleep 1; done ) &
  SCRAPER=$!
  read -r all all_fail all_cpu < <(run all --out "prometheus=127.0.0.1:$PROM_PORT" \
    --out "influxdb=udp://127.0.0.1:$UDP_PORT" --out "statsd=127.0.0.1:$UDP_PORT" \
    --out "json=$BENCH_DIR/samples.ndjson" --out "csv=$BENCH_DIR/samples.csv" \
    --out "prometheus-rw=http://127.0.0.1:$HTTP_PORT/api/v1/write" \
    --out "otlp=http://127.0.0.1:$HTTP_PORT/v1/metrics" --out "dashboard=127.0.0.1:$DASH_PORT")
  kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true
  log "round $round/$ROUNDS: the outputs fed from the aggregator only (prometheus, influxdb)"
  read -r fig fig_fail fig_cpu < <(run figures --out "prometheus=127.0.0.1:$PROM_PORT" \
    --out "influxdb=udp://127.0.0.1:$UDP_PORT")
  FIG_RATIOS+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "$none" "$fig")")
  [ "$fig" -gt "$FIG_BEST" ] && FIG_BEST="$fig"
  samples="$(wc -l < "$BENCH_DIR/samples.ndjson" 2>/dev/null || echo 0)"
  log "round $round: none $none req/s ($none_fail failures, $none_cpu CPU µs/request), all outputs $all req/s ($all_fail failures, $all_cpu CPU µs/request, $samples JSON samples)"
  CPU_RATIOS+=("$(cpu_ratio "$none_cpu" "$all_cpu")")
  FIG_CPU_RATIOS+=("$(cpu_ratio "$none_cpu" "$fig_cpu")")
  RATIOS+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "$none" "$all")")
  [ "$none" -gt "$NONE_BEST" ] && NONE_BEST="$none"
  [ "$all" -gt "$ALL_BEST" ] && ALL_BEST="$all"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
MEDIAN="$(median "${RATIOS[@]}")"
FIG_MEDIAN="$(median "${FIG_RATIOS[@]}")"
cat <<OUT

live outputs, $CONNS users, ${DURATION}s x $ROUNDS rounds, ld on core 1, nginx on core 0
  no --out:              $NONE_BEST req/s (best round)
  every --out:           $ALL_BEST req/s (best round)
  ratio (best rounds):   $(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "$NONE_BEST" "$ALL_BEST")
  ratio (median round):  $MEDIAN   (per round: ${RATIOS[*]})
  prometheus + influxdb: $FIG_BEST req/s (best round), median ratio $FIG_MEDIAN (per round: ${FIG_RATIOS[*]})
  CPU per request, none / every --out (the throughput ratio on an idle core):
                         median $(median "${CPU_RATIOS[@]}")   (per round: ${CPU_RATIOS[*]})
  CPU per request, none / prometheus + influxdb:
                         median $(median "${FIG_CPU_RATIOS[@]}")   (per round: ${FIG_CPU_RATIOS[*]})
OUT
