#!/usr/bin/env bash
# End to end: Debian's mosquitto with a password file, a plain listener, a TLS listener (a CA
# and a server certificate made here with openssl), and WebSocket listeners without and with
# TLS. `ld replay` logs in on each (MQTT over WebSocket as 3.1.1 and, with TLS, as 5),
# publishes at QoS 1 and 2, expects its own messages back with checks, and a retained message
# reaches a later subscriber; a wrong password and an unexpected payload must fail the run.
# Loopback only; every step is bounded.
#
#   scripts/e2e/mosquitto.sh LD_BIN
set -euo pipefail
LD_BIN="${1:?usage: mosquitto.sh LD_BIN}"
case "$LD_BIN" in /*) ;; *) LD_BIN="$PWD/$LD_BIN" ;; esac
W="$(mktemp -d /tmp/ld-mosquitto-XXXXXX)"
# mosquitto started as root reads its files as the mosquitto user.
chmod 0755 "$W"
log() { printf '[mosquitto] %s\n' "$*" >&2; }
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  log "installing mosquitto"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto openssl >/dev/null
fi
MOSQ="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
PASSWD="$(command -v mosquitto_passwd || echo /usr/bin/mosquitto_passwd)"

# A CA and a certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ld e2e CA" \
  -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$W/san.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/san.ext" -out "$W/server.pem" 2>/dev/null

"$PASSWD" -c -b "$W/passwd" loader 's3cret-pw' >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PLAIN="$(free_port)"; TLS="$(free_port)"; WS="$(free_port)"; WSS="$(free_port)"
cat > "$W/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous false
password_file $W/passwd
listener $PLAIN 127.0.0.1
listener $TLS 127.0.0.1
cafile $W/ca.pem
certfile $W/server.pem
keyfile $W/server.key
listener $WS 127.0.0.1
protocol websockets
listener $WSS 127.0.0.1
protocol websockets
cafile $W/ca.pem
certfile $W/server.pem
keyfile $W/server.key
CONF
chmod 0644 "$W"/*
timeout 600 "$MOSQ" -c "$W/mosquitto.conf" > "$W/mosquitto.log" 2>&1 &
MOSQ_PID=$!
trap 'kill "$MOSQ_PID" 2>/dev/null || true; rm -rf "$W"' EXIT
for _ in $(seq 50); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$TLS" 2>/dev/null && break
  sleep 0.1
done

plan() {  # plan FILE PASSWORD EXPECTED_PAYLOAD_TEXT
  cat > "$1" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "mqtt_user"}, "user_count": 1, "spawn_rate": 1, "test_time": 30,
  "tasks": [
    {"name": "tls login", "method": "connect", "connection": "tls", "broker": "mqtts://127.0.0.1:$TLS", "ca_cert": "$W/ca.pem",
     "username": "loader", "password": "$2", "version": 5},
    {"name": "tls subscribe", "method": "subscribe", "connection": "tls", "topic": "ld/e2e/+", "qos": 1},
    {"name": "tls publish qos1", "method": "publish", "connection": "tls", "topic": "ld/e2e/one", "qos": 1,
     "payload": {"order": 7, "state": "paid"}, "user_properties": {"trace": "abc"}},
    {"name": "tls expect", "method": "expect", "connection": "tls", "topic": "ld/e2e/+", "timeout": 5,
     "assertions": [{"type": "json_path", "path": "state", "value": "$3"}, {"type": "header", "name": "trace", "value": "abc"}]},
    {"name": "plain publish qos2 retained", "method": "publish", "connection": "plain", "broker": "127.0.0.1:$PLAIN",
     "username": "loader", "password": "$2", "topic": "ld/retained", "qos": 2, "retain": true, "payload": "kept"},
    {"name": "plain late subscriber", "method": "expect", "connection": "late", "broker": "127.0.0.1:$PLAIN",
     "username": "loader", "password": "$2", "topic": "ld/retained", "timeout": 5,
     "assertions": [{"type": "contains", "value": "kept"}, {"type": "header", "name": "mqtt-retain", "value": "true"}]},
    {"name": "ws subscribe", "method": "subscribe", "connection": "ws", "broker": "ws://127.0.0.1:$WS/mqtt",
     "username": "loader", "password": "$2", "topic": "ld/ws", "qos": 1},
    {"name": "ws publish qos1", "method": "publish", "connection": "ws", "topic": "ld/ws", "qos": 1, "payload": "over websocket"},
    {"name": "ws expect", "method": "expect", "connection": "ws", "topic": "ld/ws", "timeout": 5,
     "assertions": [{"type": "contains", "value": "over websocket"}]},
    {"name": "wss expect", "method": "expect", "connection": "wss", "broker": "wss://127.0.0.1:$WSS/mqtt", "ca_cert": "$W/ca.pem",
     "username": "loader", "password": "$2", "version": 5, "topic": "ld/retained", "qos": 1, "timeout": 5,
     "assertions": [{"type": "contains", "value": "kept"}]},
    {"name": "disconnect", "method": "disconnect", "connection": "tls"}
  ]}]]}
JSON
}
run() {  # run PLAN: the exit code of one pass of the plan
  local rc=0
  (cd "$W" && timeout 120 "$LD_BIN" replay "$1" --iterations 1 --no-store --report summary --report-dir "$W/out" -q) \
    > "$W/run.out" 2> "$W/run.err" || rc=$?
  echo "$rc"
}

plan "$W/good.json" 's3cret-pw' paid
rc="$(run "$W/good.json")"
if [ "$rc" != 0 ]; then
  log "the good plan failed (exit $rc)"; cat "$W/run.err" "$W/run.out" >&2; tail -20 "$W/mosquitto.log" >&2; exit 1
fi
python3 - "$W/out/loaddensity-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
assert t["failures"] == 0 and t["requests"] >= 11, t
PY
log "login over TLS, plain, WebSocket and WebSocket over TLS, QoS 1 and 2, user properties, a retained message: passed"

plan "$W/bad-check.json" 's3cret-pw' refunded
rc="$(run "$W/bad-check.json")"
[ "$rc" = 1 ] || { log "a differing payload should fail the run (exit $rc)"; cat "$W/run.err" >&2; exit 1; }
grep -q "tls expect" "$W/run.err" "$W/run.out" "$W"/out/* || { log "the failure does not name the task"; cat "$W/run.err" "$W/run.out" >&2; exit 1; }
log "a differing payload fails its check: passed"

plan "$W/bad-login.json" 'wrong' paid
rc="$(run "$W/bad-login.json")"
[ "$rc" = 1 ] || { log "a wrong password should fail the run (exit $rc)"; cat "$W/run.err" >&2; exit 1; }
if grep -q "wrong" "$W/run.err" "$W/run.out" "$W"/out/* 2>/dev/null; then
  log "the password appears in ld's output"; exit 1
fi
log "a wrong password is refused: passed"
