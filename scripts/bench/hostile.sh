#!/usr/bin/env bash
# Hostile-server memory benchmark: peak RSS of `ld replay --once` against each answer of
# `ld-hostile` (tests/support: endless chunked body, endless Content-Length, a gzip bomb,
# endless HTTP/2 DATA, a head that never ends, a reset mid-body), with a body assertion so
# the body is read and decoded, the run stored in SQLite as by default. curl with the same
# 10 MiB cap (--max-filesize) and timeout runs against the same answers as the peer.
# Not a test: it prints figures. Traffic goes to 127.0.0.1 only; every run ends within
# TIMEOUT seconds.
#
# Usage: scripts/bench/hostile.sh
# Environment:
#   LD_BIN       the ld binary (default: target/release/ld, built here)
#   HOSTILE_BIN  the server (default: target/release/ld-hostile, built here)
#   TIMEOUT      the task timeout in seconds (default 5)
#   BENCH_DIR    work directory (default /tmp/ld-bench-hostile)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TIMEOUT="${TIMEOUT:-5}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-hostile}"

log() { printf '[bench] %s\n' "$*" >&2; }

if [ -z "${LD_BIN:-}" ] || [ -z "${HOSTILE_BIN:-}" ]; then
  log "building ld and ld-hostile (release)"
  (cd "$ROOT" && cargo build --release --locked -p ld -p ld-test-support --bins >&2)
fi
LD_BIN="${LD_BIN:-$ROOT/target/release/ld}"
HOSTILE_BIN="${HOSTILE_BIN:-$ROOT/target/release/ld-hostile}"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
cd "$BENCH_DIR"

"$HOSTILE_BIN" >addrs.txt &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  [ "$(wc -l <addrs.txt)" -ge 2 ] && break
  sleep 0.1
done
H1="$(sed -n 1p addrs.txt)"
H2="$(sed -n 2p addrs.txt)"
case "$H1$H2" in
  127.0.0.1:*127.0.0.1:*) ;;
  *) log "ld-hostile did not print two loopback addresses"; exit 1 ;;
esac

# peak_kb CMD...: runs CMD under /usr/bin/time and prints its peak RSS in KiB and exit code.
peak_kb() {
  local code=0
  /usr/bin/time -f '%M' -o rss.txt "$@" >out.txt 2>err.txt || code=$?
  printf '%s %s\n' "$(tail -1 rss.txt)" "$code"
}

plan() { # plan URL: one task reading the body (a `contains` check) with the timeout
  python3 - "$1" "$TIMEOUT" <<'PY'
import json, sys
url, timeout = sys.argv[1], float(sys.argv[2])
task = {"name": "hostile", "method": "get", "request_url": url, "timeout": timeout,
        "assertions": [{"type": "status_code", "value": 200},
                       {"type": "contains", "value": "never-there"}]}
start = {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1, "spawn_rate": 1,
         "test_time": 1, "tasks": [task]}
print(json.dumps({"load_density": [["LD_start_test", start]]}))
PY
}

printf '%-16s %12s %6s %10s %12s %6s  %s\n' case "ld peak MB" exit "ld s" "curl peak MB" exit "ld's failure"
for case in endless-chunked endless-length gzip-bomb h2-endless slow-headers reset-mid-body; do
  if [ "$case" = h2-endless ]; then
    url="http://$H2/data"
    ld_args=(--http2-prior-knowledge)
    curl_args=(--http2-prior-knowledge)
  else
    url="http://$H1/$case"
    ld_args=()
    curl_args=()
  fi
  [ "$case" = gzip-bomb ] && curl_args+=(--compressed)
  plan "$url" >plan.json
  start=$(date +%s.%N)
  read -r ld_kb ld_code < <(peak_kb "$LD_BIN" replay --once --db bench.db "${ld_args[@]}" plan.json)
  end=$(date +%s.%N)
  reason="$(grep -m1 ' hostile: ' out.txt | sed 's/^ *//' | cut -c1-90 || true)"
  read -r curl_kb curl_code < <(peak_kb curl -s -o /dev/null --max-filesize 10485760 \
    --max-time "$TIMEOUT" "${curl_args[@]}" "$url")
  printf '%-16s %12.1f %6s %10.2f %12.1f %6s  %s\n' "$case" "$(echo "$ld_kb/1024" | bc -l)" \
    "$ld_code" "$(echo "$end - $start" | bc -l)" "$(echo "$curl_kb/1024" | bc -l)" "$curl_code" "$reason"
done
