#!/usr/bin/env bash
# Replay benchmark, all on loopback, all in one run, printed side by side:
#   1. throughput: a one-worker nginx pinned to core 0 answers a 13-byte body from memory
#      (`return 200`, so that the clients and not the server's file lookups set the pace;
#      STATIC=1 serves the same bytes as a static file instead); wrk and `ld replay` (a status
#      assertion on every response, the run stored in SQLite as always) take turns for ROUNDS
#      rounds, then Locust's FastHttpUser (no wait) runs once; every client is pinned to core
#      1 with the same number of connections. The best round of each is compared, and the
#      median of the per-round ratios is printed beside it;
#   2. memory: 10,000 virtual users of `ld replay` waiting on think time, peak RSS;
#   3. open model: `ld replay --rate 5000/s`, achieved rate and latency from the intended start.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only and every step is bounded.
#
# Usage: scripts/bench/replay.sh
# Environment:
#   LD_BIN     the ld binary (default: target/release/ld, built here)
#   CONNS      connections / users for the throughput runs (default 50)
#   ROUNDS     alternating wrk / ld rounds (default 3); STATIC=1 serves a static file
#   DURATION   seconds per throughput run (default 10)
#   VUS        users of the memory run (default 10000), THINK seconds of think time (default 5)
#   RATE       arrivals per second of the open-model run (default 5000)
#   BENCH_DIR  work directory (default /tmp/ld-bench-replay)
#   LOCUST_VENV  venv for Locust (default /tmp/.venv-locust); SKIP_LOCUST=1 to leave it out
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
VUS="${VUS:-10000}"
THINK="${THINK:-5}"
RATE="${RATE:-5000}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-replay}"
LOCUST_VENV="${LOCUST_VENV:-/tmp/.venv-locust}"
SKIP_LOCUST="${SKIP_LOCUST:-0}"
ROUNDS="${ROUNDS:-3}"
STATIC="${STATIC:-0}"
PORT="${PORT:-18089}"

log() { printf '[bench] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
command -v taskset >/dev/null || need+=(util-linux)
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

# nginx: one worker on core 0, a 13-byte body, no access log.
if [ "$STATIC" = 1 ]; then
  LOCATION='location / { index index.html; }'
else
  LOCATION='location / { default_type text/html; return 200 "hello, bench\n"; }'
fi
NG="$BENCH_DIR/nginx"
mkdir -p "$NG/html" "$NG/logs"
printf 'hello, bench\n' > "$NG/html/index.html"
cat > "$NG/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 32768; multi_accept on; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $NG/tmp; proxy_temp_path $NG/tmp; fastcgi_temp_path $NG/tmp;
  uwsgi_temp_path $NG/tmp; scgi_temp_path $NG/tmp;
  server {
    listen 127.0.0.1:$PORT backlog=65535;
    root $NG/html;
    $LOCATION
  }
}
CONF
mkdir -p "$NG/tmp"
taskset -c 0 "$NGINX" -c "$NG/nginx.conf" -p "$NG" &
NGINX_PID=$!
cleanup() { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/index.html"

# 1a/1b. wrk and ld replay (the same URL, a status assertion on every response) in turns.
cat > "$BENCH_DIR/plan.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 1,
  "tasks": [{"method": "get", "request_url": "$URL", "name": "static", "assertions": [{"type": "status_code", "value": 200}]}]}]]}
JSON
WRK_RPS=0; WRK_REQ=0; LD_RPS=0; LD_REQ=0; LD_FAIL=0; LD_P99=0; RATIOS=()
for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: wrk, $CONNS connections, ${DURATION}s, core 1"
  out="$(/usr/bin/time -f '%U %S' -o "$BENCH_DIR/cpu-wrk-$round.txt" taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$URL")"
  w_rps="$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')"
  w_req="$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')"
  log "round $round/$ROUNDS: ld replay, $CONNS users, ${DURATION}s, core 1"
  rm -f "$BENCH_DIR/loaddensity-summary.json"
  /usr/bin/time -f '%U %S' -o "$BENCH_DIR/cpu-ld-$round.txt" taskset -c 1 "$LD_BIN" replay "$BENCH_DIR/plan.json" --users "$CONNS" --spawn-rate 100000 \
    --duration "${DURATION}s" --report summary --report-dir "$BENCH_DIR" -q || true
  read -r l_rps l_fail l_p99 l_req < <(python3 - "$BENCH_DIR/loaddensity-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f'{s["run"]["requests_per_s"]:.0f} {s["totals"]["failures"]} {s["latency_overall"]["p99_ms"]:.2f} {s["totals"]["requests"]}')
PY
)
  log "round $round: wrk $w_rps req/s, ld $l_rps req/s"
  RATIOS+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "$w_rps" "$l_rps")")
  if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$w_rps" "$WRK_RPS"; then
    WRK_RPS="$w_rps"; WRK_REQ="$w_req"; cp "$BENCH_DIR/cpu-wrk-$round.txt" "$BENCH_DIR/cpu-wrk.txt"
  fi
  if [ "$l_rps" -gt "${LD_RPS%.*}" ]; then
    LD_RPS="$l_rps"; LD_REQ="$l_req"; LD_FAIL="$l_fail"; LD_P99="$l_p99"; cp "$BENCH_DIR/cpu-ld-$round.txt" "$BENCH_DIR/cpu-ld.txt"
  fi
done
MEDIAN_RATIO="$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

# 1c. Locust FastHttpUser, no wait, one process on core 1.
LOCUST_RPS="n/a"
LOCUST_REQ=""
if [ "$SKIP_LOCUST" != 1 ]; then
  if [ ! -x "$LOCUST_VENV/bin/locust" ]; then
    log "installing locust into $LOCUST_VENV"
    python3 -m venv "$LOCUST_VENV" && "$LOCUST_VENV/bin/pip" install -q locust >&2
  fi
  cat > "$BENCH_DIR/locustfile.py" <<'PY'
from locust import FastHttpUser, task, constant

class Static(FastHttpUser):
    wait_time = constant(0)

    @task
    def static(self):
        with self.client.get("/index.html", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
PY
  log "locust FastHttpUser: $CONNS users, ${DURATION}s, core 1"
  (cd "$BENCH_DIR" && /usr/bin/time -f '%U %S' -o "$BENCH_DIR/cpu-locust.txt" taskset -c 1 "$LOCUST_VENV/bin/locust" -f locustfile.py --headless \
    -u "$CONNS" -r "$CONNS" -t "${DURATION}s" --host "http://127.0.0.1:$PORT" \
    --csv locust --only-summary >/dev/null 2>&1) || true
  LOCUST_RPS="$(python3 - "$BENCH_DIR/locust_stats.csv" <<'PY'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    if row["Name"] == "Aggregated":
        print(f'{float(row["Requests/s"]):.0f}')
PY
)"
  LOCUST_REQ="$(python3 -c 'import csv,sys; print(next(r["Request Count"] for r in csv.DictReader(open(sys.argv[1])) if r["Name"] == "Aggregated"))' "$BENCH_DIR/locust_stats.csv")"
fi

# 2. 10,000 users on think time: peak RSS.
cat > "$BENCH_DIR/think.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 1,
  "tasks": [{"method": "get", "request_url": "$URL", "assertions": [{"type": "status_code", "value": 200}], "think_time": $THINK}]}]]}
JSON
log "ld replay: $VUS users, think time ${THINK}s, 20s"
rm -f "$BENCH_DIR/loaddensity-summary.json"
/usr/bin/time -f '%M' -o "$BENCH_DIR/rss.txt" "$LD_BIN" replay "$BENCH_DIR/think.json" --users "$VUS" \
  --spawn-rate 2000 --duration 20s --report summary --report-dir "$BENCH_DIR" -q || true
RSS_MB="$(awk '{printf "%.0f", $1/1024}' "$BENCH_DIR/rss.txt")"
read -r VU_REQ VU_FAIL < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["totals"]["requests"], s["totals"]["failures"])' "$BENCH_DIR/loaddensity-summary.json")

# 3. Open model at RATE/s.
log "ld replay --rate ${RATE}/s for ${DURATION}s"
rm -f "$BENCH_DIR/loaddensity-summary.json"
"$LD_BIN" replay "$BENCH_DIR/plan.json" --rate "${RATE}/s" --duration "${DURATION}s" \
  --report summary --report-dir "$BENCH_DIR" -q || true
read -r OPEN_REQ OPEN_DROP OPEN_RPS OPEN_P50 OPEN_P99 < <(python3 - "$BENCH_DIR/loaddensity-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
r = s["run"]
print(s["totals"]["requests"], r["dropped"], f'{s["totals"]["requests"] / r["duration_s"]:.1f}',
      f'{s["latency_overall"]["p50_ms"]:.3f}', f'{s["latency_overall"]["p99_ms"]:.3f}')
PY
)
EXPECTED=$((RATE * DURATION))

echo
echo "== throughput: nginx (1 worker, core 0), client on core 1, $CONNS connections, ${DURATION}s, best of $ROUNDS rounds =="
printf '%-34s %12s\n' "client" "requests/s"
printf '%-34s %12s\n' "wrk" "$WRK_RPS"
printf '%-34s %12s   (failures %s, p99 %s ms)\n' "ld replay (status assertion)" "$LD_RPS" "$LD_FAIL" "$LD_P99"
printf '%-34s %12s\n' "locust FastHttpUser (no wait)" "$LOCUST_RPS"
# CPU time per request on the client's core: robust when other work shares the machine and
# the server, not the client, sets the pace.
cpu_us() { awk -v n="$2" '{ if (n > 0) printf "%.1f", ($1 + $2) * 1e6 / n; else print "n/a" }' "$1" 2>/dev/null || echo n/a; }
echo
printf '%-34s %12s\n' "client CPU per request" "µs"
printf '%-34s %12s\n' "wrk" "$(cpu_us "$BENCH_DIR/cpu-wrk.txt" "$WRK_REQ")"
printf '%-34s %12s\n' "ld replay (status assertion)" "$(cpu_us "$BENCH_DIR/cpu-ld.txt" "$LD_REQ")"
[ -n "$LOCUST_REQ" ] && printf '%-34s %12s\n' "locust FastHttpUser (no wait)" "$(cpu_us "$BENCH_DIR/cpu-locust.txt" "$LOCUST_REQ")"
python3 - "$WRK_RPS" "$LD_RPS" "$LOCUST_RPS" "$MEDIAN_RATIO" <<'PY'
import sys
wrk, ld, locust = sys.argv[1:4]
wrk, ld = float(wrk), float(ld)
print(f"ld / wrk    = {ld / wrk:.2f}   (best rounds; median of the per-round ratios {sys.argv[4]})")
if locust not in ("n/a", ""):
    print(f"ld / locust = {ld / float(locust):.1f}x")
PY
echo
echo "== memory: $VUS users with ${THINK}s think time, 20s =="
echo "peak RSS: ${RSS_MB} MB   (requests $VU_REQ, failures $VU_FAIL)"
echo
echo "== open model: ${RATE}/s for ${DURATION}s =="
echo "arrivals expected $EXPECTED: sent $OPEN_REQ, dropped $OPEN_DROP"
python3 -c "import sys; e,s=int(sys.argv[1]),int(sys.argv[2]); print(f'achieved {s/e*100:.2f}% of the target rate')" "$EXPECTED" "$OPEN_REQ"
echo "measured rate ${OPEN_RPS}/s; latency from the intended start: p50 ${OPEN_P50} ms, p99 ${OPEN_P99} ms"
