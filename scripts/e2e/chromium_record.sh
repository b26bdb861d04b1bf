#!/usr/bin/env bash
# End to end: headless Chromium (Debian package `chromium`) browses a local site through
# `ld record`, over plain HTTP and over HTTPS intercepted with ld's CA, which Chromium trusts
# through an NSS database (no certificate errors ignored). The HAR must hold every request the
# pages made, with the statuses and the request and response bodies the server saw.
#
#   scripts/e2e/chromium_record.sh
#
# The site is scripts/fixtures/site.py served over HTTP and HTTPS on 127.0.0.1 by
# chromium_record.py (its certificate comes from a throwaway CA made with openssl, which
# `ld record` trusts through --upstream-ca). Three pages are opened: the site's page over HTTP,
# the same over HTTPS, and a page whose fetches all run at once, one of them cross-origin.
# Chromium is driven over its DevTools pipe by chromium_record.py, which also lists every
# request the page made; after `ld record` is stopped with SIGTERM, the HAR is compared with
# that list and with the server's log.
#
# Installs what is missing (apt: chromium, libnss3-tools, openssl; python3 must be present).
# All traffic stays on 127.0.0.1: the calls Chromium makes on its own to Google hosts are sent
# around the proxy and failed inside the browser (see `browse` in chromium_record.py), and the
# check fails if the HAR holds any other origin.
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
DRIVER="$HERE/chromium_record.py"

# Loopback only: never let a proxy variable from the environment reroute the traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

log() { printf '[chromium-e2e] %s\n' "$*" >&2; }
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
      for f in record.log site.err chromium.log; do
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

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/ld-chromium-e2e.XXXXXX")"
log "$("$CHROMIUM" --version 2>/dev/null | head -n 1), $("$LD" --version), scratch $SCRATCH"

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

# -- the site -----------------------------------------------------------------------------------

"$PYTHON" "$DRIVER" serve --cert "$certs/site.pem" --key "$certs/site.key" \
  --log "$SCRATCH/server.jsonl" > "$SCRATCH/site.json" 2> "$SCRATCH/site.err" &
SITE_PID=$!
PIDS+=("$SITE_PID")
wait_for_line "$SCRATCH/site.json" "$SITE_PID" 10 || die "the site did not start"
HTTP_PORT="$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["http"])' < "$SCRATCH/site.json")"
HTTPS_PORT="$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["https"])' < "$SCRATCH/site.json")"
HTTP_ORIGIN="http://127.0.0.1:$HTTP_PORT"
HTTPS_ORIGIN="https://127.0.0.1:$HTTPS_PORT"
log "site on $HTTP_ORIGIN and $HTTPS_ORIGIN"

# -- ld's CA, trusted by Chromium through the NSS database in its HOME -----------------------------

export LD_DATA_DIR="$SCRATCH/ld-data"
"$LD" ca export > "$SCRATCH/ld-ca.pem"
grep -q "BEGIN CERTIFICATE" "$SCRATCH/ld-ca.pem" || die "ld ca export wrote no certificate"
CHROME_HOME="$SCRATCH/home"
NSSDB="$CHROME_HOME/.pki/nssdb"
mkdir -p "$NSSDB"
certutil -N -d "sql:$NSSDB" --empty-password
certutil -A -d "sql:$NSSDB" -t "C,," -n "ld recording proxy CA" -i "$SCRATCH/ld-ca.pem"

# -- ld record ----------------------------------------------------------------------------------

HAR="$SCRATCH/recording.har"
"$LD" record --proxy 127.0.0.1:0 -o "$HAR" --upstream-ca "$certs/ca.pem" 2> "$SCRATCH/record.log" &
RECORD_PID=$!
PIDS+=("$RECORD_PID")
wait_for_line "$SCRATCH/record.log" "$RECORD_PID" 15 || die "ld record did not start"
first="$(head -n 1 "$SCRATCH/record.log")"
PROXY="$(printf '%s\n' "$first" | sed -n 's|^ld record: listening on http://\([^ ,]*\),.*|\1|p')"
[ -n "$PROXY" ] || die "the first line of ld record's stderr does not name its address: $first"
log "ld record listening on $PROXY"

# -- Chromium -----------------------------------------------------------------------------------

# In the background so that a signal to this script is handled at once (the trap stops it).
timeout -k 5 150 "$PYTHON" "$DRIVER" browse --chromium "$CHROMIUM" --home "$CHROME_HOME" \
  --profile "$SCRATCH/profile" --proxy "$PROXY" --out "$SCRATCH/browser.json" \
  --chromium-log "$SCRATCH/chromium.log" \
  "$HTTP_ORIGIN/" "$HTTPS_ORIGIN/" "$HTTPS_ORIGIN/parallel?other=http%3A%2F%2F127.0.0.1%3A$HTTP_PORT" &
BROWSE_PID=$!
PIDS+=("$BROWSE_PID")
browse_status=0
wait "$BROWSE_PID" || browse_status=$?
PIDS=("$SITE_PID" "$RECORD_PID")

# -- stop ld record (SIGTERM writes the HAR) and the site -----------------------------------------

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
stop_pid "$SITE_PID" 5
PIDS=()

[ "$browse_status" -eq 0 ] || die "Chromium did not finish the pages (exit $browse_status)"
[ -s "$HAR" ] || die "ld record wrote no HAR"

# -- the check ----------------------------------------------------------------------------------

"$PYTHON" "$DRIVER" check --har "$HAR" --server-log "$SCRATCH/server.jsonl" \
  --browser "$SCRATCH/browser.json" --origin "$HTTP_ORIGIN" --origin "$HTTPS_ORIGIN" ||
  die "the HAR does not match what the pages requested"
PASSED=1
log "passed in $((SECONDS - START)) s"
