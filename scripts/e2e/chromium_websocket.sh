#!/usr/bin/env bash
# End to end, a WebSocket session from the browser to a replay: headless Chromium (Debian
# package `chromium`) opens a page that talks to its server over a WebSocket, through
# `ld record`; the HAR must hold the session as Chrome writes it (`_webSocketMessages` on the
# entry: every message sent and received, in order), `ld import` must make websocket tasks of
# it, and `ld replay PLAN --once --no-store` must pass (exit 0) against the same server started
# again, and fail (exit 1, naming the step) against one whose echo answers otherwise.
#
#   scripts/e2e/chromium_websocket.sh
#
# The site is scripts/fixtures/ws_site.py: a page whose script sends three messages (text,
# JSON, text) over ws://127.0.0.1:PORT/echo, each once the echo of the one before came back,
# closes the socket and sets its title to 'done'. Its WebSocket side is written out with the
# standard library (hashlib, base64, struct: RFC 6455's handshake and frames), so nothing is
# installed from PyPI. Chromium is driven over its DevTools pipe by chromium_websocket.py
# (which reuses chromium_record.py's Browser), which also lists the frames Chromium saw; the
# HAR is compared with them and with the server's log of the frames it read and wrote.
#
# The replays run against a fresh server on the recorded port (the plan names it), so they
# depend on nothing left of the recording:
#   --echo same    the recorded server again: every step passes, exit 0
#   --echo wrong   answers every message with the text 'unexpected': the JSON message's
#                  reply is no longer a JSON object, so its step fails, exit 1
#   --echo close   closes the socket (1011) when the second message comes: that step fails
#                  with the close code, exit 1
#
# Installs what is missing (apt: chromium; python3 must be present). All traffic stays on
# 127.0.0.1 (Chromium's own calls to Google hosts are failed inside the browser, as in
# chromium_record.sh), every wait has a timeout, and the whole check takes well under 2 minutes.
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

SITE_PID=""
start_site() {  # start_site NAME PORT ARGS...: the site in the background; sets SITE_PID and PORT
  local name=$1 port=$2
  shift 2
  : > "$SCRATCH/$name.port"
  "$PYTHON" "$SITE" "$port" --log "$SCRATCH/$name.jsonl" "$@" \
    > "$SCRATCH/$name.port" 2>> "$SCRATCH/site.err" &
  SITE_PID=$!
  PIDS+=("$SITE_PID")
  wait_for_line "$SCRATCH/$name.port" "$SITE_PID" 10 || die "the site ($name) did not start"
  PORT="$(head -n 1 "$SCRATCH/$name.port")"
}

stop_site() {
  local kept=() p
  stop_pid "$SITE_PID" 5
  for p in "${PIDS[@]}"; do [ "$p" = "$SITE_PID" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
  SITE_PID=""
}

# -- the site and ld record -------------------------------------------------------------------

start_site site-record 0
ORIGIN="http://127.0.0.1:$PORT"
log "site on $ORIGIN"

HAR="$SCRATCH/recording.har"
"$LD" record --proxy 127.0.0.1:0 -o "$HAR" 2> "$SCRATCH/record.log" &
RECORD_PID=$!
PIDS+=("$RECORD_PID")
# Its address is on the "listening on" line of its stderr (after the line saying it made its CA,
# on the first run with this data directory).
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
  --chromium-log "$SCRATCH/chromium.log" "$ORIGIN/" &
BROWSE_PID=$!
PIDS+=("$BROWSE_PID")
browse_status=0
wait "$BROWSE_PID" || browse_status=$?
PIDS=("$SITE_PID" "$RECORD_PID")
[ "$browse_status" -eq 0 ] || die "Chromium did not finish the page (exit $browse_status)"

# -- stop ld record (SIGTERM writes the HAR) and the site -----------------------------------------

# The session's entry goes to the journal when both directions have closed: wait for it, so
# that stopping the proxy cannot cut the session short.
for ((i = 0; i < 100; i++)); do
  grep -q '_webSocketMessages' "$HAR.journal" 2>/dev/null && break
  sleep 0.1
done
grep -q '_webSocketMessages' "$HAR.journal" 2>/dev/null ||
  log "the WebSocket session is not in the journal 10 s after the page closed it"
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
PIDS=("$SITE_PID")
[ "$record_status" -eq 0 ] || die "ld record exited with $record_status"
log "ld record: $(grep '^wrote ' "$SCRATCH/record.log" || echo 'no "wrote" line')"
stop_site
[ -s "$HAR" ] || die "ld record wrote no HAR"

# -- the HAR and the plan -------------------------------------------------------------------------

"$PYTHON" "$DRIVER" har --har "$HAR" --browser "$SCRATCH/browser.json" \
  --server-log "$SCRATCH/site-record.jsonl" --origin "$ORIGIN" >&2 ||
  die "the HAR does not hold the WebSocket session the page had"

PLAN="$SCRATCH/plan.json"
"$LD" import "$HAR" -o "$PLAN" 2> "$SCRATCH/import.log" || die "ld import failed (see import.log)"
"$PYTHON" "$DRIVER" plan --plan "$PLAN" --origin "$ORIGIN" --step-out "$SCRATCH/step" >&2 ||
  die "the plan does not hold the WebSocket session's tasks"

# -- replays against a fresh server -----------------------------------------------------------

RECORDED_PORT=$PORT
replay() {  # replay MODE: runs the plan against a fresh site with --echo MODE; sets REPLAY_STATUS
  start_site "site-$1" "$RECORDED_PORT" --echo "$1"
  [ "$PORT" = "$RECORDED_PORT" ] || die "the site came up on $PORT, not $RECORDED_PORT"
  REPLAY_STATUS=0
  timeout -k 5 60 "$LD" replay "$PLAN" --once --no-store > "$SCRATCH/replay-$1.log" 2>&1 ||
    REPLAY_STATUS=$?
  cat "$SCRATCH/replay-$1.log" >> "$SCRATCH/replay.log"
  stop_site
  log "replay against --echo $1: exit $REPLAY_STATUS"
}

replay same
[ "$REPLAY_STATUS" -eq 0 ] || die "ld replay against the same server exited $REPLAY_STATUS (see replay-same.log)"
sent="$(grep -c '"event": "recv"' "$SCRATCH/site-same.jsonl" || true)"
[ "$sent" -eq 3 ] || die "the replay sent the server $sent messages, the page sent 3"

# The step each broken server must fail: the JSON message's, as the importer named it.
STEP="$(head -n 1 "$SCRATCH/step")"
# What the failure must say of it: the reply is no JSON object, or the server's close code.
declare -A WHY=([wrong]='does not match' [close]='1011')
for mode in wrong close; do
  replay "$mode"
  [ "$REPLAY_STATUS" -eq 1 ] || die "ld replay against --echo $mode exited $REPLAY_STATUS, expected 1"
  # The failures list of the summary: "N × KIND  STEP: why".
  failure="$(grep -F "× " "$SCRATCH/replay-$mode.log" | grep -F " $STEP: " | head -n 1 || true)"
  [ -n "$failure" ] ||
    die "ld replay against --echo $mode does not list the step $STEP as failed (see replay-$mode.log)"
  case "$failure" in
    *"${WHY[$mode]}"*) ;;
    *) die "ld replay against --echo $mode fails $STEP, but not with '${WHY[$mode]}': $failure" ;;
  esac
  log "  failed as expected: $(printf '%s' "$failure" | sed 's/^ *//; s/  */ /g')"
done

PASSED=1
log "passed in $((SECONDS - START)) s"
