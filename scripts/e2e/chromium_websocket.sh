#!/usr/bin/env bash
# End to end, WebSocket sessions from the browser to a replay: headless Chromium (Debian
# package `chromium`) opens a page that talks to its server over a WebSocket, through
# `ld record`, once over ws:// and once over wss:// (TLS intercepted with ld's CA, which
# Chromium trusts through an NSS database; no certificate errors ignored). The HAR must hold
# each session as Chrome writes it (`_webSocketMessages` on the entry: every message sent and
# received, in order), `ld import` must make websocket tasks of them, and
# `ld replay PLAN --once --no-store` must pass (exit 0) against the same servers started
# again, and fail (exit 1, naming the step) against ones whose echo answers otherwise.
#
#   scripts/e2e/chromium_websocket.sh
#
# The site is scripts/fixtures/ws_site.py, run twice (HTTP, and HTTPS with a certificate from a
# throwaway CA made with openssl, which `ld record` trusts through --upstream-ca and
# `ld replay` through --ca-cert): a page whose script sends three messages (text, JSON, text)
# over ws(s)://127.0.0.1:PORT/echo, each once the echo of the one before came back, closes the
# socket and sets its title to 'done'. Its WebSocket side is written out with the standard
# library (hashlib, base64, struct: RFC 6455's handshake and frames), so nothing is installed
# from PyPI. Chromium is driven over its DevTools pipe by chromium_websocket.py (which reuses
# chromium_record.py's Browser), which also lists the frames Chromium saw; the HAR is compared
# with them and with each server's log of the frames it read and wrote.
#
# The replays run against fresh servers on the recorded ports (the plan names them), so they
# depend on nothing left of the recording:
#   --echo same    the recorded servers again: every step passes, exit 0
#   --echo wrong   answers every message with the text 'unexpected': the JSON message's
#                  reply is no longer a JSON object, so its step fails (in each session), exit 1
#   --echo close   closes the socket (1011) when the second message comes: that step fails
#                  with the close code, exit 1
#
# Installs what is missing (apt: chromium, libnss3-tools, openssl; python3 must be present).
# All traffic stays on 127.0.0.1 (Chromium's own calls to Google hosts are failed inside the
# browser, as in chromium_record.sh), every wait has a timeout, and the whole check takes
# seconds (well under 2 minutes, once ld is built).
#
# Environment:
#   LD_BIN    the ld binary to test (default: cargo build, then target/debug/ld)
#   CHROMIUM  the browser (default /usr/bin/chromium)
#   KEEP=1    keep the scratch directory (it is always kept when the check fails)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PYTHON="${PYTHON:-python3}"
DRIVER="$HERE/chromium_websocket.py"
SITE="$ROOT/scripts/fixtures/ws_site.py"

# Loopback only: never let a proxy variable from the environment reroute the traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

log() { printf '[chromium-ws-e2e] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

START=$SECONDS
SCRATCH=""
PASSED=0
PIDS=()

stop_pid() {  # stop_pid PID SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup() {
  local status=$? i
  # Last started first: the browser, then ld record, then the site.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[$i]}" 10
  done
  if [ -n "$SCRATCH" ] && [ -d "$SCRATCH" ]; then
    if [ "$PASSED" -eq 1 ] && [ "${KEEP:-0}" != 1 ]; then
      rm -rf "$SCRATCH"
    else
      local f
      for f in record.log site.err chromium.log import.log replay.log; do
        if [ -s "$SCRATCH/$f" ]; then
          log "--- last lines of $f"
          grep -v dbus "$SCRATCH/$f" | tail -n 15 >&2
        fi
      done
      log "scratch directory kept: $SCRATCH"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- what the test needs ------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {  # apt_install PACKAGE...: installs those not installed yet
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (install them, or run as root)"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    timeout 600 apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
}

command -v "$PYTHON" >/dev/null || die "python3 is needed"
command -v dpkg >/dev/null || die "this script installs its tools with apt (Debian)"
[ -x "$CHROMIUM" ] || apt_install chromium
command -v certutil >/dev/null || apt_install libnss3-tools
command -v openssl >/dev/null || apt_install openssl
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM"

if [ -n "${LD_BIN:-}" ]; then
  LD="$LD_BIN"
else
  log "cargo build --bin ld"
  (cd "$ROOT" && cargo build --locked --quiet --bin ld)
  target="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
  LD="$target/debug/ld"
fi
[ -x "$LD" ] || die "no ld binary at $LD"

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/ld-chromium-ws-e2e.XXXXXX")"
log "$("$CHROMIUM" --version 2>/dev/null | head -n 1), $("$LD" --version), scratch $SCRATCH"
export LD_DATA_DIR="$SCRATCH/ld-data"

wait_for_line() {  # wait_for_line FILE PID SECONDS: until FILE has a full first line
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if [ -s "$1" ] && [ "$(head -c 4096 "$1" | wc -l)" -ge 1 ]; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# -- the site's certificate: a throwaway CA and a leaf for 127.0.0.1 ------------------------------

certs="$SCRATCH/certs"
mkdir -p "$certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=ld e2e site CA" -keyout "$certs/ca.key" -out "$certs/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$certs/site.key" -out "$certs/site.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$certs/site.ext"
openssl x509 -req -in "$certs/site.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" \
  -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$certs/site.ext" -out "$certs/site.pem" \
  2>/dev/null

# -- the sites ----------------------------------------------------------------------------------

SITE_PIDS=()
start_site() {  # start_site NAME PORT ARGS...: a site in the background; sets PORT
  local name=$1 port=$2
  shift 2
  : > "$SCRATCH/$name.port"
  "$PYTHON" "$SITE" "$port" --log "$SCRATCH/$name.jsonl" "$@" \
    > "$SCRATCH/$name.port" 2>> "$SCRATCH/site.err" &
  local pid=$!
  PIDS+=("$pid")
  SITE_PIDS+=("$pid")
  wait_for_line "$SCRATCH/$name.port" "$pid" 10 || die "the site ($name) did not start"
  PORT="$(head -n 1 "$SCRATCH/$name.port")"
}

stop_sites() {
  local kept=() p q gone
  for p in "${SITE_PIDS[@]}"; do stop_pid "$p" 5; done
  for p in "${PIDS[@]}"; do
    gone=0
    for q in "${SITE_PIDS[@]}"; do [ "$p" = "$q" ] && gone=1; done
    [ "$gone" -eq 1 ] || kept+=("$p")
  done
  PIDS=("${kept[@]}")
  SITE_PIDS=()
}

TLS=(--cert "$certs/site.pem" --key "$certs/site.key")
start_site http-record 0
HTTP_PORT=$PORT
start_site https-record 0 "${TLS[@]}"
HTTPS_PORT=$PORT
HTTP_ORIGIN="http://127.0.0.1:$HTTP_PORT"
HTTPS_ORIGIN="https://127.0.0.1:$HTTPS_PORT"
log "sites on $HTTP_ORIGIN and $HTTPS_ORIGIN"

# -- ld's CA, trusted by Chromium through the NSS database in its HOME -----------------------------

"$LD" ca export > "$SCRATCH/ld-ca.pem"
grep -q "BEGIN CERTIFICATE" "$SCRATCH/ld-ca.pem" || die "ld ca export wrote no certificate"
NSSDB="$SCRATCH/home/.pki/nssdb"
mkdir -p "$NSSDB"
certutil -N -d "sql:$NSSDB" --empty-password
certutil -A -d "sql:$NSSDB" -t "C,," -n "ld recording proxy CA" -i "$SCRATCH/ld-ca.pem"

# -- ld record ----------------------------------------------------------------------------------

HAR="$SCRATCH/recording.har"
"$LD" record --proxy 127.0.0.1:0 -o "$HAR" --upstream-ca "$certs/ca.pem" 2> "$SCRATCH/record.log" &
RECORD_PID=$!
PIDS+=("$RECORD_PID")
# Its address is on the "listening on" line of its stderr.
PROXY=""
for ((i = 0; i < 150; i++)); do
  PROXY="$(sed -n 's|^ld record: listening on http://\([^ ,]*\),.*|\1|p' "$SCRATCH/record.log")"
  [ -n "$PROXY" ] && break
  kill -0 "$RECORD_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PROXY" ] || die "ld record did not say where it listens within 15 s"
log "ld record listening on $PROXY"

# -- Chromium -----------------------------------------------------------------------------------

# In the background so that a signal to this script is handled at once (the trap stops it).
timeout -k 5 90 "$PYTHON" "$DRIVER" browse --chromium "$CHROMIUM" --home "$SCRATCH/home" \
  --profile "$SCRATCH/profile" --proxy "$PROXY" --out "$SCRATCH/browser.json" \
  --chromium-log "$SCRATCH/chromium.log" "$HTTP_ORIGIN/" "$HTTPS_ORIGIN/" &
BROWSE_PID=$!
PIDS+=("$BROWSE_PID")
browse_status=0
wait "$BROWSE_PID" || browse_status=$?
PIDS=("${SITE_PIDS[@]}" "$RECORD_PID")
[ "$browse_status" -eq 0 ] || die "Chromium did not finish the pages (exit $browse_status)"

# -- stop ld record (SIGTERM writes the HAR) and the sites ----------------------------------------

# A session's entry goes to the journal when both directions have closed: wait for both, so
# that stopping the proxy cannot cut one short.
for ((i = 0; i < 100; i++)); do
  [ "$(grep -c '_webSocketMessages' "$HAR.journal" 2>/dev/null || true)" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c '_webSocketMessages' "$HAR.journal" 2>/dev/null || true)" -ge 2 ] ||
  log "the WebSocket sessions are not both in the journal 10 s after the pages closed them"
kill -TERM "$RECORD_PID"
for ((i = 0; i < 200; i++)); do
  kill -0 "$RECORD_PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$RECORD_PID" 2>/dev/null; then
  kill -KILL "$RECORD_PID"
  die "ld record still running 20 s after SIGTERM"
fi
record_status=0
wait "$RECORD_PID" || record_status=$?
PIDS=("${SITE_PIDS[@]}")
[ "$record_status" -eq 0 ] || die "ld record exited with $record_status"
log "ld record: $(grep '^wrote ' "$SCRATCH/record.log" || echo 'no "wrote" line')"
stop_sites
[ -s "$HAR" ] || die "ld record wrote no HAR"

# -- the HAR and the plan -------------------------------------------------------------------------

"$PYTHON" "$DRIVER" har --har "$HAR" --browser "$SCRATCH/browser.json" \
  --site "$HTTP_ORIGIN=$SCRATCH/http-record.jsonl" --site "$HTTPS_ORIGIN=$SCRATCH/https-record.jsonl" >&2 ||
  die "the HAR does not hold the WebSocket sessions the pages had"

PLAN="$SCRATCH/plan.json"
"$LD" import "$HAR" -o "$PLAN" 2> "$SCRATCH/import.log" || die "ld import failed (see import.log)"
"$PYTHON" "$DRIVER" plan --plan "$PLAN" --origin "$HTTP_ORIGIN" --origin "$HTTPS_ORIGIN" \
  --step-out "$SCRATCH/steps" >&2 ||
  die "the plan does not hold the WebSocket sessions' tasks"

# -- replays against fresh servers ----------------------------------------------------------------

replay() {  # replay MODE: runs the plan against fresh sites with --echo MODE; sets REPLAY_STATUS
  start_site "http-$1" "$HTTP_PORT" --echo "$1"
  [ "$PORT" = "$HTTP_PORT" ] || die "the HTTP site came up on $PORT, not $HTTP_PORT"
  start_site "https-$1" "$HTTPS_PORT" --echo "$1" "${TLS[@]}"
  [ "$PORT" = "$HTTPS_PORT" ] || die "the HTTPS site came up on $PORT, not $HTTPS_PORT"
  REPLAY_STATUS=0
  timeout -k 5 60 "$LD" replay "$PLAN" --once --no-store --ca-cert "$certs/ca.pem" \
    > "$SCRATCH/replay-$1.log" 2>&1 || REPLAY_STATUS=$?
  cat "$SCRATCH/replay-$1.log" >> "$SCRATCH/replay.log"
  stop_sites
  log "replay against --echo $1: exit $REPLAY_STATUS"
}

replay same
[ "$REPLAY_STATUS" -eq 0 ] || die "ld replay against the same servers exited $REPLAY_STATUS (see replay-same.log)"
for scheme in http https; do
  sent="$(grep -c '"event": "recv"' "$SCRATCH/$scheme-same.jsonl" || true)"
  [ "$sent" -eq 3 ] || die "the replay sent the $scheme server $sent messages, the page sent 3"
done

# The steps each broken server must fail: the JSON message's, as the importer named them, and
# what the failure must say: the reply is no JSON object, or the server's close code.
mapfile -t STEPS < "$SCRATCH/steps"
declare -A WHY=([wrong]='does not match' [close]='1011')
for mode in wrong close; do
  replay "$mode"
  [ "$REPLAY_STATUS" -eq 1 ] || die "ld replay against --echo $mode exited $REPLAY_STATUS, expected 1"
  for line in "${STEPS[@]}"; do
    count="${line%%$'\t'*}"
    step="${line#*$'\t'}"
    # The failures list of the summary: "N × KIND  STEP: why", N the tasks of that name failed.
    failure="$(grep -F "× " "$SCRATCH/replay-$mode.log" | grep -F " $step: " | head -n 1 || true)"
    [ -n "$failure" ] ||
      die "ld replay against --echo $mode does not list the step $step as failed (see replay-$mode.log)"
    case "$failure" in
      *"${WHY[$mode]}"*) ;;
      *) die "ld replay against --echo $mode fails $step, but not with '${WHY[$mode]}': $failure" ;;
    esac
    [[ "$failure" =~ ^\ *$count\ × ]] ||
      die "ld replay against --echo $mode should fail $step $count times (one per session): $failure"
    log "  failed as expected: $(printf '%s' "$failure" | sed 's/^ *//; s/  */ /g')"
  done
done

PASSED=1
log "passed in $((SECONDS - START)) s"
