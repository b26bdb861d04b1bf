#!/usr/bin/env bash
# WebSocket benchmark of `ld replay`, all on loopback, all in one run, printed side by side:
#   1. throughput: `ld-ws-echo` (tests/support: one thread, pinned to core 0) echoes every
#      message; CONNS users keep one connection each and loop `connect` (kept: the connection
#      is already open to that URL) then `sendrecv` of a small text message with an `expect`
#      check, think-free, for DURATION seconds. The same plan then runs in LoadDensity's own
#      `websocket_user` (its executor, in a venv; its hard-coded 0.1-0.2 s wait between
#      iterations is set to zero so that the loop is think-free as in the others), and the
#      same loop in artillery's `ws` engine (`send` with a capture, so that it waits for the
#      echo). Every client is pinned to core 1. Messages/s counts echoes received (round trips);
#   2. memory: WS_VUS users of `ld replay` each open a connection and wait on think time, peak
#      RSS beside the target: idle connections, then connections that each had one echo.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only and every step is bounded.
#
# Usage: scripts/bench/websocket.sh
# Environment:
#   LD_BIN        the ld binary; ECHO_BIN the echo server (default: target/release/{ld,ld-ws-echo},
#                 built here unless both are given)
#   CONNS         users / connections of the throughput runs (default 50)
#   DURATION      seconds per throughput run (default 10)
#   WS_VUS        idle connections of the memory run (default 10000), HOLD seconds (default 25)
#   RSS_TARGET_MB the target peak RSS of the memory run (default 150)
#   BENCH_DIR     work directory (default /tmp/ld-bench-websocket)
#   LDV_VENV      venv for LoadDensity (default /tmp/ldv-bench); SKIP_LOADDENSITY=1 leaves it out
#   ARTILLERY_DIR npm prefix for artillery (default /tmp/artillery); SKIP_ARTILLERY=1 leaves it out
#   PORT          the echo server's port (default 18090)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
WS_VUS="${WS_VUS:-10000}"
HOLD="${HOLD:-25}"
RSS_TARGET_MB="${RSS_TARGET_MB:-150}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-websocket}"
LDV_VENV="${LDV_VENV:-/tmp/ldv-bench}"
ARTILLERY_DIR="${ARTILLERY_DIR:-/tmp/artillery}"
SKIP_LOADDENSITY="${SKIP_LOADDENSITY:-0}"
SKIP_ARTILLERY="${SKIP_ARTILLERY:-0}"
PORT="${PORT:-18090}"
# Installs of the peers are bounded; a peer that cannot be installed in time is skipped.
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-300}"

log() { printf '[bench] %s\n' "$*" >&2; }
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((WS_VUS + 1000)) ]; then
  log "ulimit -n is $NOFILE: fewer than the $WS_VUS connections of the memory run can be opened"
fi

need=()
[ -x /usr/bin/time ] || need+=(time)
command -v taskset >/dev/null || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  timeout "$INSTALL_TIMEOUT" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need[*]} >/dev/null" || true
fi
# The server on core 0 and the clients on core 1, when taskset is there and so is a second core.
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  CORE0=(taskset -c 0); CORE1=(taskset -c 1)
else
  log "taskset or a second core missing: server and clients are not pinned"
  CORE0=(); CORE1=()
fi

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ] || [ -z "${ECHO_BIN:-}" ]; then
  # Two builds, so that ld is built with its own features and not the test servers' as well.
  log "cargo build --release --locked -p ld; -p ld-test-support --bin ld-ws-echo"
  (cd "$ROOT" && timeout 1200 cargo build --release --locked -p ld >&2 \
    && timeout 600 cargo build --release --locked -p ld-test-support --bin ld-ws-echo >&2)
fi
LD_BIN="${LD_BIN:-$ROOT/target/release/ld}"
ECHO_BIN="${ECHO_BIN:-$ROOT/target/release/ld-ws-echo}"

# The echo server, one thread on core 0.
"${CORE0[@]}" "$ECHO_BIN" "127.0.0.1:$PORT" >"$BENCH_DIR/echo-addr.txt" &
ECHO_PID=$!
cleanup() { kill "$ECHO_PID" 2>/dev/null || true; wait "$ECHO_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do
  [ -s "$BENCH_DIR/echo-addr.txt" ] && break
  sleep 0.1
done
ADDR="$(head -1 "$BENCH_DIR/echo-addr.txt")"
case "$ADDR" in
  127.0.0.1:*) ;;
  *) log "ld-ws-echo did not print a loopback address"; exit 1 ;;
esac
URL="ws://$ADDR/"
MESSAGE='{"msg": "hello, bench"}'

# 1a. ld replay: connect (kept open) + sendrecv, think-free, CONNS users.
python3 - "$URL" "$MESSAGE" "$CONNS" "$DURATION" >"$BENCH_DIR/plan.json" <<'PY'
import json, sys
url, message, users, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(json.dumps({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "websocket_user"},
    "user_count": users, "spawn_rate": users, "test_time": duration,
    "tasks": [
        {"method": "connect", "request_url": url, "name": "connect"},
        {"method": "sendrecv", "request_url": url, "name": "sendrecv",
         "payload": message, "expect": "hello, bench"},
    ]}]]}))
PY
log "ld replay: $CONNS users, connect + sendrecv, ${DURATION}s, core 1"
/usr/bin/time -f '%U %S %M' -o "$BENCH_DIR/cpu-ld.txt" "${CORE1[@]}" timeout $((DURATION + 30)) \
  "$LD_BIN" replay "$BENCH_DIR/plan.json" --users "$CONNS" --spawn-rate 100000 \
  --duration "${DURATION}s" --report summary --report-dir "$BENCH_DIR" -q || true
read -r LD_MPS LD_MSGS LD_FAIL LD_P99 < <(python3 - "$BENCH_DIR/loaddensity-summary.json" <<'PY' || echo "n/a 0 n/a n/a"
import json, sys
s = json.load(open(sys.argv[1]))
row = next(r for r in s["run"]["names"] if r["name"] == "sendrecv")
fail = sum(r["failures"] for r in s["run"]["names"])
print(f'{row["requests_per_s"]:.0f} {row["requests"]} {fail} {row["p99_ms"]:.2f}')
PY
)

# 1b. LoadDensity's websocket_user, the same plan through its executor.
LDV_MPS="n/a"; LDV_NOTE=""
if [ "$SKIP_LOADDENSITY" = 1 ]; then
  LDV_NOTE="skipped (SKIP_LOADDENSITY=1)"
else
  if [ ! -x "$LDV_VENV/bin/python" ] || ! "$LDV_VENV/bin/python" -c 'import je_load_density' 2>/dev/null; then
    log "installing je-load-density into $LDV_VENV"
    { python3 -m venv "$LDV_VENV" && timeout "$INSTALL_TIMEOUT" "$LDV_VENV/bin/pip" install -q je-load-density >&2; } || true
  fi
  if "$LDV_VENV/bin/python" -c 'import je_load_density' 2>/dev/null; then
    cat > "$BENCH_DIR/ldv_run.py" <<'PY'
# Runs the plan's LD_start_test through LoadDensity's executor and prints the sendrecv count,
# failures and rate from Locust's stats.
import json, sys
from locust import constant
from je_load_density.utils.executor.action_executor import executor
from je_load_density.wrapper.user_template.websocket_user_template import WebSocketUserWrapper

# websocket_user waits between(0.1, 0.2) s after each iteration: think-free, as in the others.
WebSocketUserWrapper.wait_time = constant(0)
plan = json.load(open(sys.argv[1]))
envs = []
for name, args in plan["load_density"]:
    if name == "LD_start_test":
        args["on_environment"] = envs.append
executor.execute_action(plan["load_density"])
entry = envs[0].stats.get("sendrecv", "WS")
fails = envs[0].stats.total.num_failures
window = max(entry.last_request_timestamp - entry.start_time, 1e-9)
print(f"{entry.num_requests / window:.0f} {entry.num_requests} {fails}")
PY
    log "LoadDensity websocket_user: $CONNS users, ${DURATION}s, core 1"
    (cd "$BENCH_DIR" && "${CORE1[@]}" timeout $((DURATION + 60)) "$LDV_VENV/bin/python" ldv_run.py plan.json \
      >"$BENCH_DIR/ldv-out.txt" 2>"$BENCH_DIR/ldv-err.txt") || true
    if read -r LDV_MPS LDV_MSGS LDV_FAIL < <(tail -1 "$BENCH_DIR/ldv-out.txt") && [ -n "${LDV_MSGS:-}" ]; then
      LDV_NOTE="failures $LDV_FAIL"
    else
      LDV_MPS="n/a"; LDV_NOTE="skipped: the run printed no figures (see $BENCH_DIR/ldv-err.txt)"
    fi
  else
    LDV_NOTE="skipped: je-load-density could not be installed into $LDV_VENV"
  fi
fi

# 1c. artillery's ws engine: the same loop, `send` with a capture waits for the echo.
ART_MPS="n/a"; ART_NOTE=""
ARTILLERY="$ARTILLERY_DIR/node_modules/.bin/artillery"
if [ "$SKIP_ARTILLERY" = 1 ]; then
  ART_NOTE="skipped (SKIP_ARTILLERY=1)"
else
  if [ ! -x "$ARTILLERY" ]; then
    log "installing artillery into $ARTILLERY_DIR (at most ${INSTALL_TIMEOUT}s)"
    # Playwright (artillery's browser engine) would download a browser on install: not needed.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout "$INSTALL_TIMEOUT" \
      npm install --prefix "$ARTILLERY_DIR" --no-audit --no-fund artillery@latest >&2 || true
  fi
  if [ -x "$ARTILLERY" ]; then
    cat > "$BENCH_DIR/artillery-processor.js" <<JS
// whileTrue: each VU loops until DURATION seconds after this worker's first round trip.
let deadline = 0;
module.exports.running = function (context, next) {
  if (!deadline) deadline = Date.now() + $DURATION * 1000;
  return next(Date.now() < deadline);
};
JS
    cat > "$BENCH_DIR/artillery.yml" <<YML
config:
  target: "$URL"
  processor: "./artillery-processor.js"
  phases:
    - duration: 1
      arrivalCount: $CONNS
scenarios:
  - engine: ws
    flow:
      - loop:
          - send:
              payload: '$MESSAGE'
              capture:
                json: "\$.msg"
                as: echo
        whileTrue: running
YML
    log "artillery ws: $CONNS connections, ${DURATION}s, core 1"
    (cd "$BENCH_DIR" && "${CORE1[@]}" timeout $((DURATION + 90)) "$ARTILLERY" run --quiet \
      --output artillery-report.json artillery.yml >"$BENCH_DIR/artillery-out.txt" 2>&1) || true
    if read -r ART_MPS ART_MSGS ART_FAIL < <(python3 - "$BENCH_DIR/artillery-report.json" "$DURATION" <<'PY' 2>/dev/null
import json, sys
a = json.load(open(sys.argv[1]))["aggregate"]
c = a["counters"]
got = c.get("websocket.messages_received", 0)
errors = sum(v for k, v in c.items() if k.startswith("errors."))
# From the first counter to the last: the VUs' first connections to their last echoes.
window = (a["lastCounterAt"] - a["firstCounterAt"]) / 1000 or float(sys.argv[2])
print(f"{got / window:.0f} {got} {errors}")
PY
    ); then
      ART_NOTE="errors $ART_FAIL"
    else
      ART_MPS="n/a"; ART_NOTE="skipped: the run wrote no report (see $BENCH_DIR/artillery-out.txt)"
    fi
  else
    ART_NOTE="skipped: artillery could not be installed within ${INSTALL_TIMEOUT}s"
  fi
fi

# 2. WS_VUS connections held open on think time; peak RSS of ld. First idle ones (a
#    `connect` only: nothing is ever read from them), then ones that each had one echo (the
#    receive path has run once on every connection).
SPAWN=$(( (WS_VUS + 4) / 5 ))
# hold NAME TASKS_JSON: runs the plan with WS_VUS users for HOLD seconds; sets RSS_MB, CONNECTS,
# FAILS and OPEN_CONNS (the connections established at the server after the spawn).
hold() {
  python3 - "$2" "$HOLD" >"$BENCH_DIR/$1.json" <<'PY'
import json, sys
print(json.dumps({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "websocket_user"}, "user_count": 1, "spawn_rate": 1,
    "test_time": int(sys.argv[2]), "tasks": json.loads(sys.argv[1])}]]}))
PY
  log "ld replay $1: $WS_VUS connections (spawn rate $SPAWN/s), ${HOLD}s"
  rm -f "$BENCH_DIR/loaddensity-summary.json"
  /usr/bin/time -f '%M' -o "$BENCH_DIR/rss-$1.txt" timeout $((HOLD + 60)) "$LD_BIN" replay "$BENCH_DIR/$1.json" \
    --users "$WS_VUS" --spawn-rate "$SPAWN" --duration "${HOLD}s" \
    --report summary --report-dir "$BENCH_DIR" -q >"$BENCH_DIR/$1-out.txt" 2>&1 &
  local pid=$!
  sleep $(( HOLD < 14 ? HOLD / 2 : 12 ))
  OPEN_CONNS="$(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l || echo n/a)"
  wait "$pid" || true
  RSS_MB="$(awk '{printf "%.0f", $1/1024}' "$BENCH_DIR/rss-$1.txt" 2>/dev/null || echo n/a)"
  read -r CONNECTS FAILS < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["totals"]["requests"], s["totals"]["failures"])' \
    "$BENCH_DIR/loaddensity-summary.json" 2>/dev/null || echo "n/a n/a")
}
hold idle "[{\"method\": \"connect\", \"request_url\": \"$URL\", \"name\": \"connect\", \"think_time\": $HOLD}]"
IDLE=("$RSS_MB" "$CONNECTS" "$FAILS" "$OPEN_CONNS")
hold echoed "[{\"method\": \"connect\", \"request_url\": \"$URL\", \"name\": \"connect\"},
  {\"method\": \"sendrecv\", \"request_url\": \"$URL\", \"name\": \"sendrecv\", \"payload\": \"hi\", \"think_time\": $HOLD}]"
ECHOED=("$RSS_MB" "$CONNECTS" "$FAILS" "$OPEN_CONNS")

ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")
except (ValueError, ZeroDivisionError): print("n/a")' "$1" "$2"; }

echo
echo "== throughput: ld-ws-echo (1 thread, core 0), client on core 1, $CONNS connections, ${DURATION}s, think-free =="
printf '%-40s %12s %10s   %s\n' "client" "messages/s" "ld/peer" "notes"
printf '%-40s %12s %10s   %s\n' "ld replay (connect + sendrecv, expect)" "$LD_MPS" "1.00" \
  "messages $LD_MSGS, failures $LD_FAIL, p99 $LD_P99 ms"
printf '%-40s %12s %10s   %s\n' "LoadDensity websocket_user (no wait)" "$LDV_MPS" "$(ratio "$LD_MPS" "$LDV_MPS")" "$LDV_NOTE"
printf '%-40s %12s %10s   %s\n' "artillery ws (send + capture)" "$ART_MPS" "$(ratio "$LD_MPS" "$ART_MPS")" "$ART_NOTE"
echo "(messages/s: echoes received per second, one round trip each)"
echo
echo "== memory: $WS_VUS WebSocket connections of ld replay held ${HOLD}s, peak RSS (target ${RSS_TARGET_MB} MB) =="
printf '%-40s %8s   %s\n' "connections" "MB" "notes"
printf '%-40s %8s   %s\n' "idle (connect only)" "${IDLE[0]}" \
  "samples ${IDLE[1]}, failures ${IDLE[2]}, established at the server ${IDLE[3]}"
printf '%-40s %8s   %s\n' "after one echo each (connect + sendrecv)" "${ECHOED[0]}" \
  "samples ${ECHOED[1]}, failures ${ECHOED[2]}, established at the server ${ECHOED[3]}"
