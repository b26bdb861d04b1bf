#!/usr/bin/env bash
# Raw TCP benchmark of `ld replay`, all on loopback, in one run, printed side by side:
# `ld-tcp-echo` (tests/support: one thread, pinned to core 0) echoes every byte; CONNS users
# send a 16-byte line and wait for all 16 bytes back (`expect_bytes`, `expect_substring`),
# think-free, for DURATION seconds, the client pinned to core 1:
#   1. ld replay, each user on its kept connection (ld's default for a socket task);
#   2. ld replay with `"keep_alive": false`, a connection per round trip, as LoadDensity does;
#   3. LoadDensity's own `socket_user` (its executor, in a venv) running the same plan, with
#      its 0.1-0.2 s wait between iterations set to zero (think-free, as the others). Its
#      socket_user always opens a connection per step.
# Round trips/s counts echoes received. Not a test: it prints figures. Traffic goes to 127.0.0.1
# only and every step is bounded in time.
#
# Usage: scripts/bench/socket.sh
# Environment:
#   LD_BIN        the ld binary; ECHO_BIN the echo server (default: target/release/{ld,ld-tcp-echo},
#                 built here unless both are given)
#   CONNS         users / connections (default 50); DURATION seconds per run (default 10)
#   BENCH_DIR     work directory (default /tmp/ld-bench-socket)
#   LDV_VENV      venv for LoadDensity (default /tmp/ldv-bench); SKIP_LOADDENSITY=1 leaves it out
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-socket}"
LDV_VENV="${LDV_VENV:-/tmp/ldv-bench}"
SKIP_LOADDENSITY="${SKIP_LOADDENSITY:-0}"
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-300}"

log() { printf '[bench] %s\n' "$*" >&2; }
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"

if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  CORE0=(taskset -c 0); CORE1=(taskset -c 1)
else
  log "taskset or a second core missing: server and clients are not pinned"
  CORE0=(); CORE1=()
fi

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ] || [ -z "${ECHO_BIN:-}" ]; then
  log "cargo build --release --locked -p ld; -p ld-test-support --bin ld-tcp-echo"
  (cd "$ROOT" && timeout 1200 cargo build --release --locked -p ld >&2 \
    && timeout 600 cargo build --release --locked -p ld-test-support --bin ld-tcp-echo >&2)
fi
LD_BIN="${LD_BIN:-$ROOT/target/release/ld}"
ECHO_BIN="${ECHO_BIN:-$ROOT/target/release/ld-tcp-echo}"

# The echo server, one thread on core 0; started directly so that $! is the server itself.
"${CORE0[@]}" "$ECHO_BIN" 127.0.0.1:0 >"$BENCH_DIR/echo-addr.txt" &
ECHO_PID=$!
cleanup() { kill "$ECHO_PID" 2>/dev/null || true; wait "$ECHO_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do
  [ -s "$BENCH_DIR/echo-addr.txt" ] && break
  sleep 0.1
done
TARGET="$(head -1 "$BENCH_DIR/echo-addr.txt")"
case "$TARGET" in
  127.0.0.1:*) ;;
  *) log "ld-tcp-echo did not print a loopback address"; exit 1 ;;
esac

# plan FILE KEEP: the socket_user plan, one echo task; KEEP is the task's keep_alive.
plan() {
  python3 - "$TARGET" "$CONNS" "$DURATION" "$2" >"$1" <<'PY'
import json, sys
target, users, duration, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
task = {"protocol": "tcp", "target": target, "payload": "ping 0123456789\n",
        "expect_bytes": 16, "expect_substring": "ping", "timeout": 5, "name": "echo"}
if keep == "false":
    task["keep_alive"] = False
print(json.dumps({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "socket_user"},
    "user_count": users, "spawn_rate": users, "test_time": duration, "tasks": [task]}]]}))
PY
}

# ld_run NAME: runs $BENCH_DIR/NAME.json; prints "rate round_trips failures p99 cpu_s".
ld_run() {
  rm -f "$BENCH_DIR/loaddensity-summary.json"
  /usr/bin/time -f '%U %S' -o "$BENCH_DIR/cpu-$1.txt" "${CORE1[@]}" timeout $((DURATION + 30)) \
    "$LD_BIN" replay "$BENCH_DIR/$1.json" --users "$CONNS" --spawn-rate 100000 \
    --duration "${DURATION}s" --no-store --report summary --report-dir "$BENCH_DIR" -q \
    >"$BENCH_DIR/$1-out.txt" 2>&1 || true
  python3 - "$BENCH_DIR/loaddensity-summary.json" "$BENCH_DIR/cpu-$1.txt" <<'PY' || echo "n/a 0 n/a n/a n/a"
import json, sys
s = json.load(open(sys.argv[1]))
row = next(r for r in s["run"]["names"] if r["name"] == "echo")
user, system = (float(x) for x in open(sys.argv[2]).read().split()[:2])
print(f'{row["requests_per_s"]:.0f} {row["requests"]} {row["failures"]} {row["p99_ms"]:.2f} {user + system:.1f}')
PY
}

plan "$BENCH_DIR/kept.json" true
plan "$BENCH_DIR/fresh.json" false
log "ld replay, kept connections: $CONNS users, ${DURATION}s, core 1"
read -r KEPT_RPS KEPT_N KEPT_FAIL KEPT_P99 KEPT_CPU < <(ld_run kept)
log "ld replay, a connection per round trip: $CONNS users, ${DURATION}s, core 1"
read -r FRESH_RPS FRESH_N FRESH_FAIL FRESH_P99 FRESH_CPU < <(ld_run fresh)

LDV_RPS="n/a"; LDV_NOTE=""
if [ "$SKIP_LOADDENSITY" = 1 ]; then
  LDV_NOTE="skipped (SKIP_LOADDENSITY=1)"
else
  if [ ! -x "$LDV_VENV/bin/python" ] || ! "$LDV_VENV/bin/python" -c 'import je_load_density' 2>/dev/null; then
    log "installing je-load-density into $LDV_VENV"
    { python3 -m venv "$LDV_VENV" && timeout "$INSTALL_TIMEOUT" "$LDV_VENV/bin/pip" install -q je-load-density >&2; } || true
  fi
  if "$LDV_VENV/bin/python" -c 'import je_load_density' 2>/dev/null; then
    cat > "$BENCH_DIR/ldv_run.py" <<'PY'
# Runs the plan's LD_start_test through LoadDensity's executor and prints the echo count,
# failures and rate from Locust's stats.
import json, sys
from locust import constant
from je_load_density.utils.executor.action_executor import executor
from je_load_density.wrapper.user_template.socket_user_template import SocketUserWrapper

# socket_user waits between(0.1, 0.2) s after each iteration: think-free, as in the others.
SocketUserWrapper.wait_time = constant(0)
plan = json.load(open(sys.argv[1]))
envs = []
for name, args in plan["load_density"]:
    if name == "LD_start_test":
        args["on_environment"] = envs.append
executor.execute_action(plan["load_density"])
entry = envs[0].stats.get("echo", "TCP")
fails = envs[0].stats.total.num_failures
window = max(entry.last_request_timestamp - entry.start_time, 1e-9)
print(f"{entry.num_requests / window:.0f} {entry.num_requests} {fails}")
PY
    log "LoadDensity socket_user: $CONNS users, ${DURATION}s, core 1"
    (cd "$BENCH_DIR" && "${CORE1[@]}" timeout $((DURATION + 60)) "$LDV_VENV/bin/python" ldv_run.py kept.json \
      >"$BENCH_DIR/ldv-out.txt" 2>"$BENCH_DIR/ldv-err.txt") || true
    if read -r LDV_RPS LDV_N LDV_FAIL < <(tail -1 "$BENCH_DIR/ldv-out.txt") && [ -n "${LDV_N:-}" ]; then
      LDV_NOTE="round trips $LDV_N, failures $LDV_FAIL"
    else
      LDV_RPS="n/a"; LDV_NOTE="skipped: the run printed no figures (see $BENCH_DIR/ldv-err.txt)"
    fi
  else
    LDV_NOTE="skipped: je-load-density could not be installed into $LDV_VENV"
  fi
fi

ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")
except (ValueError, ZeroDivisionError): print("n/a")' "$1" "$2"; }

echo
echo "== TCP echo: ld-tcp-echo (1 thread, core 0), client on core 1, $CONNS users, ${DURATION}s, think-free =="
printf '%-44s %14s %14s   %s\n' "client" "round trips/s" "vs LoadDensity" "notes"
printf '%-44s %14s %14s   %s\n' "ld replay (kept connection)" "$KEPT_RPS" "$(ratio "$KEPT_RPS" "$LDV_RPS")" \
  "round trips $KEPT_N, failures $KEPT_FAIL, p99 $KEPT_P99 ms, cpu ${KEPT_CPU}s"
printf '%-44s %14s %14s   %s\n' "ld replay (keep_alive false)" "$FRESH_RPS" "$(ratio "$FRESH_RPS" "$LDV_RPS")" \
  "round trips $FRESH_N, failures $FRESH_FAIL, p99 $FRESH_P99 ms, cpu ${FRESH_CPU}s"
printf '%-44s %14s %14s   %s\n' "LoadDensity socket_user (no wait)" "$LDV_RPS" "1.00" "$LDV_NOTE"
