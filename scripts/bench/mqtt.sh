#!/usr/bin/env bash
# MQTT benchmark of `ld replay`, on loopback, in one run, printed side by side. Debian's
# mosquitto (anonymous, one plain listener) is pinned to core 0, every client to core 1.
#   1. publishes/s at QoS 0 and QoS 1: CONNS users loop a publish of a small payload, think-free,
#      for DURATION seconds; beside a plain paho-mqtt loop (one client, QoS 0 publishes with
#      the network loop in a thread, QoS 1 waiting for each PUBACK) and LoadDensity's
#      `mqtt_user` with paho (its 0.1-0.2 s wait set to zero); QoS 1 once more with a window of
#      INFLIGHT publishes per connection awaiting their PUBACKs (`"inflight"`);
#   2. publish-to-receive latency: one user loops an expect and a stamped QoS 1 publish on one
#      topic (each expect takes the previous iteration's message; the first one times out
#      after 1 s, as it subscribes); the p99 of the stamped samples;
#   3. memory: MQTT_VUS users each connect and wait on think time; peak RSS of ld.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only and every step is bounded.
#
# Usage: scripts/bench/mqtt.sh
# Environment:
#   LD_BIN        the ld binary (default: target/release/ld, built here)
#   CONNS         users of the throughput runs (default 50), DURATION seconds (default 10)
#   INFLIGHT      the window of the windowed QoS 1 run (default 16)
#   MQTT_VUS      idle clients of the memory run (default 10000), HOLD seconds (default 25)
#   LDV_VENV      venv for LoadDensity and paho-mqtt (default /tmp/ldv-bench-mqtt)
#   SKIP_LOADDENSITY=1 leaves LoadDensity and paho out
#   PORT          mosquitto's port (default 18830), BENCH_DIR (default /tmp/ld-bench-mqtt)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONNS="${CONNS:-50}"
DURATION="${DURATION:-10}"
INFLIGHT="${INFLIGHT:-16}"
MQTT_VUS="${MQTT_VUS:-10000}"
HOLD="${HOLD:-25}"
LDV_VENV="${LDV_VENV:-/tmp/ldv-bench-mqtt}"
SKIP_LOADDENSITY="${SKIP_LOADDENSITY:-0}"
PORT="${PORT:-18830}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-mqtt}"
log() { printf '[bench] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
chmod 0755 "$BENCH_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v taskset >/dev/null || need+=(util-linux)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
MOSQ="$(command -v mosquitto || echo /usr/sbin/mosquitto)"

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ]; then
  LD_BIN="$ROOT/target/release/ld"
  log "cargo build --release --bin ld"
  (cd "$ROOT" && cargo build --release --bin ld >&2)
fi
CORE1=(taskset -c 1)

cat > "$BENCH_DIR/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
max_connections -1
max_queued_messages 10000
# Without it mosquitto's Nagle holds a PUBACK behind a PUBLISH it just sent to the same client
# until that client's delayed ACK (40 ms): a client subscribed to what it publishes at QoS 1.
set_tcp_nodelay true
listener $PORT 127.0.0.1
CONF
chmod 0644 "$BENCH_DIR/mosquitto.conf"
(ulimit -n 65536 2>/dev/null || true; exec taskset -c 0 timeout 3600 "$MOSQ" -c "$BENCH_DIR/mosquitto.conf") \
  >"$BENCH_DIR/mosquitto.log" 2>&1 &
MOSQ_PID=$!
trap 'kill "$MOSQ_PID" 2>/dev/null || true; wait "$MOSQ_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$PORT" 2>/dev/null && break
  sleep 0.1
done

plan() {  # plan USERS TEST_TIME TASKS_JSON
  python3 - "$@" <<'PY'
import json, sys
print(json.dumps({"load_density": [["LD_start_test", {
    "user_detail_dict": {"user": "mqtt_user", "host": "127.0.0.1:%s" % sys.argv[4]},
    "user_count": int(sys.argv[1]), "spawn_rate": int(sys.argv[1]), "test_time": int(sys.argv[2]),
    "tasks": json.loads(sys.argv[3])}]]}))
PY
}
ldrun() {  # ldrun PLAN NAME [USERS]: prints "rate count failures p99_ms" of the task NAME
  rm -f "$BENCH_DIR/loaddensity-summary.json"
  "${CORE1[@]}" timeout $((DURATION + 60)) "$LD_BIN" replay "$1" --users "${3:-$CONNS}" --spawn-rate 100000 \
    --duration "${DURATION}s" --no-store --report summary --report-dir "$BENCH_DIR" -q >/dev/null 2>"$BENCH_DIR/ld-err.txt" || true
  python3 - "$BENCH_DIR/loaddensity-summary.json" "$2" <<'PY' || echo "n/a 0 n/a n/a"
import json, sys
s = json.load(open(sys.argv[1]))
rows = [r for r in s["run"]["names"] if r["name"] == sys.argv[2]]
fail = sum(r["failures"] for r in s["run"]["names"])
r = rows[0]
print(f'{r["requests_per_s"]:.0f} {r["requests"]} {fail} {r["p99_ms"]:.2f}')
PY
}

PAYLOAD='{"device":"d-17","temp":21.5,"ok":true}'
plan 1 "$DURATION" "[{\"method\": \"publish\", \"topic\": \"bench/q0\", \"qos\": 0, \"payload\": $PAYLOAD, \"name\": \"pub\"}]" "$PORT" > "$BENCH_DIR/q0.json"
plan 1 "$DURATION" "[{\"method\": \"publish\", \"topic\": \"bench/q1\", \"qos\": 1, \"payload\": $PAYLOAD, \"name\": \"pub\"}]" "$PORT" > "$BENCH_DIR/q1.json"
plan 1 "$DURATION" "[{\"method\": \"publish\", \"topic\": \"bench/q1w\", \"qos\": 1, \"inflight\": $INFLIGHT, \"payload\": $PAYLOAD, \"name\": \"pub\"}]" "$PORT" > "$BENCH_DIR/q1w.json"
plan 1 "$DURATION" "[{\"method\": \"expect\", \"topic\": \"bench/rt\", \"name\": \"recv\", \"timeout\": 1},
  {\"method\": \"publish\", \"topic\": \"bench/rt\", \"qos\": 1, \"payload\": $PAYLOAD, \"stamp\": true, \"name\": \"pub\"}]" "$PORT" > "$BENCH_DIR/rt.json"

log "ld replay: $CONNS users, QoS 0 publishes, ${DURATION}s, core 1"
read -r LD_Q0 LD_Q0_N LD_Q0_F _ < <(ldrun "$BENCH_DIR/q0.json" pub)
log "ld replay: $CONNS users, QoS 1 publishes"
read -r LD_Q1 LD_Q1_N LD_Q1_F _ < <(ldrun "$BENCH_DIR/q1.json" pub)
log "ld replay: $CONNS users, QoS 1 publishes, a window of $INFLIGHT"
read -r LD_Q1W LD_Q1W_N LD_Q1W_F LD_Q1W_P99 < <(ldrun "$BENCH_DIR/q1w.json" pub)
log "ld replay: one user, stamped QoS 1 publish + expect"
read -r LD_RT LD_RT_N LD_RT_F LD_RT_P99 < <(ldrun "$BENCH_DIR/rt.json" recv 1)
[ "$LD_RT_N" != 0 ] || { log "the round-trip run failed:"; tail -5 "$BENCH_DIR/ld-err.txt" >&2; }

PAHO_Q0="n/a"; PAHO_Q1="n/a"; LDV_Q0="n/a"; LDV_Q1="n/a"; NOTE=""
if [ "$SKIP_LOADDENSITY" = 1 ]; then
  NOTE="skipped (SKIP_LOADDENSITY=1)"
else
  if ! "$LDV_VENV/bin/python" -c 'import je_load_density, paho.mqtt' 2>/dev/null; then
    log "installing je-load-density and paho-mqtt into $LDV_VENV"
    { python3 -m venv "$LDV_VENV" && timeout 600 "$LDV_VENV/bin/pip" install -q je-load-density 'paho-mqtt<2' >&2; } || true
  fi
  if "$LDV_VENV/bin/python" -c 'import je_load_density, paho.mqtt' 2>/dev/null; then
    cat > "$BENCH_DIR/paho_loop.py" <<'PY'
# One paho client: QoS 0 publishes as fast as the loop thread sends them, then QoS 1 each
# waiting for its PUBACK; prints "q0_per_s q1_per_s".
import sys, time
import paho.mqtt.client as mqtt
port, duration, payload = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
c = mqtt.Client(client_id="paho-bench", clean_session=True)
c.max_queued_messages_set(1000)
c.connect("127.0.0.1", port)
c.loop_start()
rates = []
for qos in (0, 1):
    n, end = 0, time.time() + duration
    while time.time() < end:
        info = c.publish("bench/paho", payload, qos=qos)
        if qos == 1:
            info.wait_for_publish(5)
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            time.sleep(0.0005); continue
        n += 1
    rates.append(n / duration)
c.loop_stop()
print(f"{rates[0]:.0f} {rates[1]:.0f}")
PY
    log "paho-mqtt loop: QoS 0 then QoS 1, ${DURATION}s each, core 1"
    read -r PAHO_Q0 PAHO_Q1 < <("${CORE1[@]}" timeout $((2 * DURATION + 30)) "$LDV_VENV/bin/python" "$BENCH_DIR/paho_loop.py" \
      "$PORT" "$DURATION" "$PAYLOAD" 2>"$BENCH_DIR/paho-err.txt" || echo "n/a n/a")
    cat > "$BENCH_DIR/ldv_run.py" <<'PY'
# Runs the plan's LD_start_test through LoadDensity's executor; prints the publish rate.
import json, sys
from locust import constant
from je_load_density.utils.executor.action_executor import executor
from je_load_density.wrapper.user_template.mqtt_user_template import MqttUserWrapper
MqttUserWrapper.wait_time = constant(0)
plan = json.load(open(sys.argv[1]))
envs = []
for name, args in plan["load_density"]:
    if name == "LD_start_test":
        args["user_count"] = int(sys.argv[2]); args["spawn_rate"] = int(sys.argv[2])
        args["on_environment"] = envs.append
executor.execute_action(plan["load_density"])
total = envs[0].stats.total
window = max(total.last_request_timestamp - total.start_time, 1e-9)
print(f"{total.num_requests / window:.0f} {total.num_requests} {total.num_failures}")
PY
    for q in q0 q1; do
      log "LoadDensity mqtt_user: $CONNS users, $q, ${DURATION}s, core 1"
      out="$( (cd "$BENCH_DIR" && "${CORE1[@]}" timeout $((DURATION + 60)) "$LDV_VENV/bin/python" ldv_run.py "$q.json" "$CONNS" \
        2>"$BENCH_DIR/ldv-err-$q.txt") | tail -1 || true)"
      rate="$(echo "$out" | awk 'NF==3 {print $1}')"
      [ "$q" = q0 ] && LDV_Q0="${rate:-n/a}" || LDV_Q1="${rate:-n/a}"
    done
  else
    NOTE="skipped: je-load-density and paho-mqtt could not be installed into $LDV_VENV"
  fi
fi

# 3. MQTT_VUS clients connected and idle; peak RSS of ld.
SPAWN=$(( (MQTT_VUS + 4) / 5 ))
plan 1 "$HOLD" "[{\"method\": \"connect\", \"name\": \"connect\", \"keep_alive\": 120, \"think_time\": $HOLD}]" "$PORT" > "$BENCH_DIR/idle.json"
log "ld replay: $MQTT_VUS idle clients (spawn rate $SPAWN/s), ${HOLD}s"
rm -f "$BENCH_DIR/loaddensity-summary.json"
/usr/bin/time -f '%M' -o "$BENCH_DIR/rss-idle.txt" timeout $((HOLD + 60)) "$LD_BIN" replay "$BENCH_DIR/idle.json" \
  --users "$MQTT_VUS" --spawn-rate "$SPAWN" --duration "${HOLD}s" --no-store \
  --report summary --report-dir "$BENCH_DIR" -q >"$BENCH_DIR/idle-out.txt" 2>&1 &
pid=$!
sleep $(( HOLD < 14 ? HOLD / 2 : 12 ))
OPEN="$(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l || echo n/a)"
wait "$pid" || true
RSS_MB="$(awk '{printf "%.0f", $1/1024}' "$BENCH_DIR/rss-idle.txt" 2>/dev/null || echo n/a)"
read -r CONNECTS FAILS < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["totals"]["requests"], s["totals"]["failures"])' \
  "$BENCH_DIR/loaddensity-summary.json" 2>/dev/null || echo "n/a n/a")

ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1]) / float(sys.argv[2]):.1f}x")
except Exception: print("n/a")' "$1" "$2"; }
cat <<OUT

MQTT, mosquitto on core 0, clients on core 1, $CONNS users, ${DURATION}s runs
                                     QoS 0 pub/s   QoS 1 pub/s
  ld replay                          $LD_Q0        $LD_Q1   (failures $LD_Q0_F / $LD_Q1_F)
  paho-mqtt loop (one client)        $PAHO_Q0        $PAHO_Q1   ld: $(ratio "$LD_Q0" "$PAHO_Q0") / $(ratio "$LD_Q1" "$PAHO_Q1")
  LoadDensity mqtt_user (no wait)    $LDV_Q0        $LDV_Q1   ld: $(ratio "$LD_Q0" "$LDV_Q0") / $(ratio "$LD_Q1" "$LDV_Q1") (target 10x) $NOTE
  ld replay, QoS 1, inflight $INFLIGHT                    $LD_Q1W   (failures $LD_Q1W_F, publish-to-PUBACK p99 ${LD_Q1W_P99} ms)
                                     ld: $(ratio "$LD_Q1W" "$LD_Q1") of window 1, $(ratio "$LD_Q1W" "$PAHO_Q1") of paho, $(ratio "$LD_Q1W" "$LDV_Q1") of LoadDensity (target 10x)
  publish-to-receive (stamped QoS 1, one user): $LD_RT_N received, $LD_RT/s, p99 ${LD_RT_P99} ms, failures $LD_RT_F
  idle clients: $MQTT_VUS asked, $OPEN connected at the broker, peak RSS ${RSS_MB} MB (target 150), $CONNECTS connects, $FAILS failures
OUT
