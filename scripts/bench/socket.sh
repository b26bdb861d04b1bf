#!/usr/bin/env bash
# Raw TCP throughput of `ld replay`: 50 users (CONNS) send a 16-byte line to a TCP echo and
# wait for it back (expect_substring) for DURATION seconds, each on its kept connection; prints
# round trips/s, failures and p99. The echo is a python3 asyncio server on 127.0.0.1, pinned
# to core 0, the client to core 1 (taskset, when present). With LOADDENSITY=1 the same plan
# runs under LoadDensity's socket_user (a pip venv) for the ratio; note its socket_user waits
# 0.1-0.2 s between iterations and opens a connection per step, so it measures LoadDensity as
# users would run it, not a closed loop.
# Not a test: it prints figures. Traffic stays on 127.0.0.1.
#
# Usage: scripts/bench/socket.sh
# Environment:
#   LD_BIN       the ld binary (default: target/release/ld, built here once)
#   CONNS        users (default 50), DURATION seconds (default 10)
#   LOADDENSITY  1 to also run LoadDensity (default 0); LD_VENV its venv (default /tmp/ldv2)
#   BENCH_DIR    work directory (default /tmp/ld-bench-socket)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
LOADDENSITY="${LOADDENSITY:-0}"
LD_VENV="${LD_VENV:-/tmp/ldv2}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-socket}"

log() { printf '[bench] %s\n' "$*" >&2; }
pin() { # pin CORE CMD...: runs CMD on CORE when taskset exists
  local core="$1"; shift
  if command -v taskset >/dev/null; then taskset -c "$core" "$@"; else "$@"; fi
}

if [ -z "${LD_BIN:-}" ]; then
  log "building ld (release)"
  (cd "$ROOT" && cargo build --release --locked -p ld >&2)
fi
LD_BIN="${LD_BIN:-$ROOT/target/release/ld}"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
cd "$BENCH_DIR"

cat > echo.py <<'PY'
import asyncio, sys

async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
pin 0 python3 echo.py >port.txt &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  [ -s port.txt ] && break
  sleep 0.1
done
PORT="$(head -1 port.txt)"
[ -n "$PORT" ] || { log "the echo server printed no port"; exit 1; }
TARGET="127.0.0.1:$PORT"

cat > plan.json <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "socket_user"}, "user_count": $CONNS, "spawn_rate": $CONNS, "test_time": $DURATION,
  "tasks": [{"protocol": "tcp", "target": "$TARGET", "payload": "ping 0123456789\n", "expect_substring": "\n", "timeout": 5, "name": "echo"}]}]]}
JSON

log "ld replay: $CONNS users, ${DURATION}s, core 1, echo on core 0"
pin 1 "$LD_BIN" replay plan.json --users "$CONNS" --spawn-rate 100000 --duration "${DURATION}s" \
  --no-store --report summary --report-dir "$BENCH_DIR" -q || true
read -r LD_RPS LD_REQ LD_FAIL LD_P99 < <(python3 - "$BENCH_DIR/loaddensity-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f'{s["run"]["requests_per_s"]:.0f} {s["totals"]["requests"]} {s["totals"]["failures"]} {s["latency_overall"]["p99_ms"]:.2f}')
PY
)
printf 'ld replay tcp echo: %s round trips/s (%s round trips, %s failures, p99 %s ms), %s users, %ss\n' \
  "$LD_RPS" "$LD_REQ" "$LD_FAIL" "$LD_P99" "$CONNS" "$DURATION"

if [ "$LOADDENSITY" = 1 ]; then
  if [ ! -x "$LD_VENV/bin/loaddensity" ]; then
    log "installing LoadDensity into $LD_VENV"
    python3 -m venv "$LD_VENV" && "$LD_VENV/bin/pip" install -q je-load-density >&2
  fi
  log "LoadDensity socket_user: $CONNS users, ${DURATION}s, core 1"
  START=$(date +%s.%N)
  (pin 1 "$LD_VENV/bin/loaddensity" run plan.json >ld-py.out 2>ld-py.err) || true
  END=$(date +%s.%N)
  # LoadDensity logs one line per request; count the successful socket ones.
  PY_REQ="$(grep -c -i 'echo' ld-py.err ld-py.out 2>/dev/null | awk -F: '{s+=$2} END {print s+0}')"
  python3 - "$PY_REQ" "$START" "$END" "$DURATION" "$LD_RPS" <<'PY'
import sys
req, start, end, duration, ld = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rps = req / duration if req else 0.0
print(f"LoadDensity socket_user: {rps:.0f} round trips/s ({req} log lines in {end - start:.1f}s wall)")
if rps:
    print(f"ratio ld / LoadDensity: {ld / rps:.1f}x")
PY
fi
