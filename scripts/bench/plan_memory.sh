#!/usr/bin/env bash
# Plan memory benchmark: how much memory `ld replay` needs for a large plan and a large CSV
# source. Prints, for each case, the input size, the peak RSS of the run and their ratio:
#   1. a plan of 100,000 tasks (every task its own URL, headers and a status assertion);
#   2. the same with 1,000,000 tasks (a file of about 130 MB);
#   (cases 100k-named and 1m-named: the same plans with ten task names in all, so that what
#   the tasks cost shows apart from what per-name figures cost)
#   3. a plan of 3 tasks reading a CSV source of about 313 MB, one user, a few iterations.
# Requests go to a python3 http.server on 127.0.0.1, started here and stopped at the end; the
# plan runs are bounded (one user, a few seconds), so what is measured is mostly what the
# plan costs before and while it runs, not the traffic. Not a test: it prints figures.
#
# Usage: scripts/bench/plan_memory.sh
# Environment:
#   LD_BIN     the ld binary (default: target/release/ld, built here)
#   CASES      which cases to run, space-separated (default: "100k 1m csv"; also 100k-named,
#              1m-named)
#   CSV_MB     size of the CSV source in MB (default 313)
#   RUN_SECS   how long each plan run may send requests (default 3)
#   BENCH_DIR  work directory (default: a new temporary directory, removed at the end)
#   PORT       the local HTTP server's port (default 18097)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CASES="${CASES:-100k 1m csv}"
CSV_MB="${CSV_MB:-313}"
RUN_SECS="${RUN_SECS:-3}"
PORT="${PORT:-18097}"

log() { printf '[bench] %s\n' "$*" >&2; }

if [ -z "${BENCH_DIR:-}" ]; then
  BENCH_DIR="$(mktemp -d /tmp/ld-bench-plan-memory.XXXXXX)"
  REMOVE_DIR=1
else
  mkdir -p "$BENCH_DIR"
  REMOVE_DIR=0
fi

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ]; then
  LD_BIN="$ROOT/target/release/ld"
  log "cargo build --release --bin ld"
  (cd "$ROOT" && cargo build --release --bin ld >&2)
fi

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$REMOVE_DIR" = 1 ]; then
    rm -rf "$BENCH_DIR"
  fi
}
trap cleanup EXIT

mkdir -p "$BENCH_DIR/www"
printf 'ok\n' >"$BENCH_DIR/www/ok"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$BENCH_DIR/www" \
  >"$BENCH_DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

# Peak RSS in KiB of a command, from /usr/bin/time -v when present, else from VmHWM.
peak_rss() {
  local out="$1"
  shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" >"$out.stdout" 2>"$out.stderr" || echo "exit $?" >>"$out.stderr"
    awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$out.stderr"
  else
    "$@" >"$out.stdout" 2>"$out.stderr" &
    local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
      if [ -n "$v" ]; then hwm="$v"; fi
      sleep 0.05
    done
    wait "$pid" || echo "exit $?" >>"$out.stderr"
    echo "$hwm"
  fi
}

gen_plan() {
  python3 - "$@" <<'EOF'
import json, sys
path, n, port, named = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
with open(path, "w") as f:
    f.write('{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, '
            '"user_count": 1, "spawn_rate": 1, "test_time": null, "tasks": [\n')
    for i in range(n):
        task = {
            "method": "get",
            "request_url": f"http://127.0.0.1:{port}/ok?item={i}",
            "headers": {"Accept": "text/plain", "X-Request": f"r-{i}"},
            "assertions": [{"type": "status_code", "value": 200}],
        }
        if named:
            task["name"] = f"step {i % 10}"
        f.write(("," if i else "") + json.dumps(task) + "\n")
    f.write("]}]]}\n")
EOF
}

gen_csv() {
  python3 - "$@" <<'EOF'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
target = mb * 1000 * 1000
with open(path, "w", newline="") as f:
    f.write("user,password,note\n")
    size, i = 0, 0
    while size < target:
        line = f'user{i:08d},pw-{i:012d},"note {i}, quoted"\n'
        f.write(line)
        size += len(line)
        i += 1
EOF
}

human() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

RESULTS=()
report() {
  local label="$1" size="$2" rss_kib="$3" status="$4"
  local rss=$((rss_kib * 1024))
  local ratio
  ratio="$(awk -v r="$rss" -v s="$size" 'BEGIN { printf "%.1f", r / s }')"
  RESULTS+=("$(printf '%-22s input %10s   peak RSS %10s   ratio %6sx   %s' \
    "$label" "$(human "$size")" "$(human "$rss")" "$ratio" "$status")")
}

run_plan_case() {
  local label="$1" n="$2" named="${3:-0}"
  local plan="$BENCH_DIR/plan_$label.json"
  log "$label: generating $n tasks"
  gen_plan "$plan" "$n" "$PORT" "$named"
  local size
  size="$(stat -c %s "$plan")"
  log "$label: running (one user, at most ${RUN_SECS}s)"
  local rss
  rss="$(peak_rss "$BENCH_DIR/run_$label" "$LD_BIN" replay "$plan" -u 1 -d "${RUN_SECS}s" \
    -q --report-dir "$BENCH_DIR" --no-store)"
  local status
  status="$(tail -n 1 "$BENCH_DIR/run_$label.stderr" | cut -c1-120)"
  grep -q '^exit ' "$BENCH_DIR/run_$label.stderr" || status="ok"
  report "$label" "$size" "${rss:-0}" "$status"
  rm -f "$plan"
}

run_csv_case() {
  local csv="$BENCH_DIR/users.csv" plan="$BENCH_DIR/plan_csv.json"
  log "csv: generating a ${CSV_MB} MB CSV source"
  gen_csv "$csv" "$CSV_MB"
  cat >"$plan" <<EOF
{"load_density": [
  ["LD_register_csv_source", {"name": "u", "file_path": "users.csv"}],
  ["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1,
    "spawn_rate": 1, "test_time": null, "tasks": [
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/ok?u=\${csv.u.user}",
     "assertions": [{"type": "status_code", "value": 200}]},
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/ok?p=\${csv.u.password}",
     "assertions": [{"type": "status_code", "value": 200}]},
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/ok",
     "headers": {"X-Note": "\${csv.u.note}"},
     "assertions": [{"type": "status_code", "value": 200}]}
  ]}]
]}
EOF
  local size
  size="$(stat -c %s "$csv")"
  log "csv: running (one user, 5 iterations)"
  local rss
  rss="$(peak_rss "$BENCH_DIR/run_csv" "$LD_BIN" replay "$plan" -u 1 -n 5 -q \
    --report-dir "$BENCH_DIR" --no-store)"
  local status="ok"
  if grep -q '^exit ' "$BENCH_DIR/run_csv.stderr"; then
    status="$(tail -n 1 "$BENCH_DIR/run_csv.stderr" | cut -c1-120)"
  fi
  report "csv source" "$size" "${rss:-0}" "$status"
  rm -f "$csv"
}

for c in $CASES; do
  case "$c" in
    100k) run_plan_case 100k 100000 ;;
    1m) run_plan_case 1m 1000000 ;;
    100k-named) run_plan_case 100k-named 100000 1 ;;
    1m-named) run_plan_case 1m-named 1000000 1 ;;
    csv) run_csv_case ;;
    *) log "unknown case $c" ;;
  esac
done

echo
echo "ld plan memory ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
for r in "${RESULTS[@]}"; do
  echo "  $r"
done
