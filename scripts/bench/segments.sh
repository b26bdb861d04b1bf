#!/usr/bin/env bash
# Execution segments benchmark, all on loopback, printed side by side:
#   1. throughput: a one-worker nginx pinned to core 0 answers a 13-byte body from memory;
#      one `ld replay` process with CONNS users (a status assertion on every response, not
#      stored, as the segments are not) and
#      the same plan as two segments (`--segment 0/2` and `1/2`, CONNS/2 users each, released
#      together by `ld collect`, their results merged into one stored run) take turns for
#      ROUNDS rounds, every client on core 1. Requests over test time (the longest segment's)
#      from the results files, beside the single process's, best round and median ratio;
#   2. merge: one real run of MERGE_REQUESTS requests writes its results (`--results`); eight
#      copies of it, numbered as segments 0/8 to 7/8, are merged by `ld merge` (stored, and
#      with --no-store), best of three.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only and every step is bounded.
#
# Usage: scripts/bench/segments.sh
# Environment:
#   LD_BIN          the ld binary (default: target/release/ld, built here)
#   CONNS           users of the single process, split over the segments (default 50)
#   ROUNDS          alternating rounds (default 3); DURATION seconds per run (default 10)
#   MERGE_REQUESTS  requests of the run whose results are merged eight times (default 1000000)
#   BENCH_DIR       work directory (default /tmp/ld-bench-segments)
#   PORT            nginx's port (default 18091); COLLECT_PORT the collector's (default 18092)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
MERGE_REQUESTS="${MERGE_REQUESTS:-1000000}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-segments}"
PORT="${PORT:-18091}"
COLLECT_PORT="${COLLECT_PORT:-18092}"

log() { printf '[bench] %s\n' "$*" >&2; }
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
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
    location / { default_type text/html; return 200 "hello, bench\n"; }
  }
}
CONF
taskset -c 0 "$NGINX" -c "$NG/nginx.conf" -p "$NG" &
NGINX_PID=$!
cleanup() { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/"
cat > "$BENCH_DIR/plan.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": $CONNS, "spawn_rate": 100000,
  "tasks": [{"method": "get", "request_url": "$URL", "name": "hello", "assertions": [{"type": "status_code", "value": 200}]}]}]]}
JSON

# The stored run's requests per second: `ld runs show --json` of the latest run.
rps_of() {
  "$LD_BIN" runs show latest --json --db "$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["run"]
print("%.0f %d %d" % (r["requests"] / max(r["duration_s"], 1e-9), r["requests"], r["failures"]))'
}

# Requests over the longest test time of the given results files (the same measure for one
# process and for the segments).
rate_of() {
  python3 - "$@" <<'PY'
import json, sys
rs = [json.load(open(f)) for f in sys.argv[1:]]
req = sum(n["requests"] for r in rs for n in r["names"])
fail = sum(n["failures"] for r in rs for n in r["names"])
print("%.0f %d %d" % (req / max(max(r["duration_s"] for r in rs), 1e-9), req, fail))
PY
}

ONE_BEST=0; SEG_BEST=0; RATIOS=()
for round in $(seq "$ROUNDS"); do
  log "round $round/$ROUNDS: one process, $CONNS users, ${DURATION}s, core 1"
  taskset -c 1 "$LD_BIN" replay "$BENCH_DIR/plan.json" -d "${DURATION}s" -q --no-store --results "$BENCH_DIR/one.json" || true
  read -r one_rps one_req one_fail < <(rate_of "$BENCH_DIR/one.json")
  log "round $round/$ROUNDS: two segments of $((CONNS / 2)) users, released by ld collect, core 1"
  rm -f "$BENCH_DIR/seg.db"
  "$LD_BIN" collect --listen "127.0.0.1:$COLLECT_PORT" --segments 2 --db "$BENCH_DIR/seg.db" -q --timeout 5m &
  COLLECT_PID=$!
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$COLLECT_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  SEG_PIDS=()
  for i in 0 1; do
    taskset -c 1 "$LD_BIN" replay "$BENCH_DIR/plan.json" -d "${DURATION}s" -q --no-store \
      --segment "$i/2" --collector "http://127.0.0.1:$COLLECT_PORT" --results "$BENCH_DIR/seg$i.json" &
    SEG_PIDS+=($!)
  done
  wait "$COLLECT_PID" || true
  wait "${SEG_PIDS[@]}" || true
  read -r seg_rps seg_req seg_fail < <(rate_of "$BENCH_DIR/seg0.json" "$BENCH_DIR/seg1.json")
  [ "$(rps_of "$BENCH_DIR/seg.db" | cut -d' ' -f2)" = "$seg_req" ] || log "the merged run does not count what the segments did"
  log "round $round: one process $one_rps req/s ($one_fail failed), two segments $seg_rps req/s ($seg_fail failed)"
  RATIOS+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "$one_rps" "$seg_rps")")
  [ "$one_rps" -gt "$ONE_BEST" ] && ONE_BEST="$one_rps"
  [ "$seg_rps" -gt "$SEG_BEST" ] && SEG_BEST="$seg_rps"
done
MEDIAN="$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

log "a run of $MERGE_REQUESTS requests for its results"
PER_USER=$(( (MERGE_REQUESTS + CONNS - 1) / CONNS ))
taskset -c 1 "$LD_BIN" replay "$BENCH_DIR/plan.json" -n "$PER_USER" -q --no-store --results "$BENCH_DIR/big.json" || true
python3 - "$BENCH_DIR" <<'PY'
import json, sys
d = sys.argv[1]
r = json.load(open(f"{d}/big.json"))
for i in range(8):
    r["segment"] = {"index": i, "count": 8}
    json.dump(r, open(f"{d}/part{i}.json", "w"))
print(sum(n["requests"] for n in r["names"]), file=open(f"{d}/big.count", "w"))
PY
BIG="$(cat "$BENCH_DIR/big.count")"
best() {
  local best=999999
  for _ in 1 2 3; do
    rm -f "$BENCH_DIR/merged.db"
    local t0 t1 ms
    t0="$(date +%s%N)"
    "$LD_BIN" merge "$BENCH_DIR"/part*.json -q "$@" >/dev/null || true
    t1="$(date +%s%N)"
    ms=$(( (t1 - t0) / 1000000 ))
    [ "$ms" -lt "$best" ] && best="$ms"
  done
  echo "$best"
}
MERGE_STORED_MS="$(best --db "$BENCH_DIR/merged.db")"
MERGE_NOSTORE_MS="$(best --no-store)"
MERGED_REQ="$("$LD_BIN" merge "$BENCH_DIR"/part*.json -q --db "$BENCH_DIR/merged.db" >/dev/null; "$LD_BIN" runs show latest --json --db "$BENCH_DIR/merged.db" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["requests"])')"
SIZE_KB=$(( $(stat -c %s "$BENCH_DIR/part0.json") / 1024 ))

echo
echo "== throughput: nginx (1 worker, core 0), clients on core 1, ${DURATION}s, best of $ROUNDS rounds =="
printf '%-34s %12s\n' "client" "req/s"
printf '%-34s %12s\n' "ld replay, one process, $CONNS users" "$ONE_BEST"
printf '%-34s %12s\n' "two segments of $((CONNS / 2)) users, merged" "$SEG_BEST"
echo "two segments / one process: best $(python3 -c "import sys; print(f'{int(sys.argv[2]) / int(sys.argv[1]):.3f}')" "$ONE_BEST" "$SEG_BEST"), median of rounds $MEDIAN (target: within 10%)"
echo
echo "== merge: 8 results files of $BIG requests each (${SIZE_KB} KiB each), best of 3 =="
echo "ld merge, stored in ld.db:  ${MERGE_STORED_MS} ms  (merged run: $MERGED_REQ requests)"
echo "ld merge --no-store:        ${MERGE_NOSTORE_MS} ms  (target: under 1000 ms)"
