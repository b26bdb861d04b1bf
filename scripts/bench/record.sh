#!/usr/bin/env bash
# Benchmark of `ld record` (not a test): the same client at the same concurrency against a fast
# local origin directly, through `ld record`, and through `mitmdump --set hardump=...`, in one run.
#
#   scripts/bench/record.sh
#
# Prints requests per second for each, the ratios, the median latency each proxy adds (measured
# one request at a time, a new connection each), and the RSS of `ld record` sampled every second
# over a 100,000-request session.
#
# Installs what it needs: apt packages nginx-light and apache2-utils (ab), and mitmproxy (pip) in a
# venv under $LD_BENCH_TOOLS (default /tmp/ld-bench-tools), outside the repository. Builds ld in
# release mode and runs it by path (never from PATH: `ld` is also the system linker's name).
# All traffic stays on 127.0.0.1.
#
# Environment:
#   REQUESTS        requests per throughput run for direct and ld record (default 100000)
#   MITM_REQUESTS   requests for the mitmdump run (default 5000; it manages a few hundred per second)
#   CONCURRENCY     ab concurrency (default 20)
#   LATENCY_SAMPLES sequential requests per latency measurement (default 2000)
#   KEEP_ALIVE      set to 1 to run ab with -k (default: no keep-alive, a connection per request)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TOOLS="${LD_BENCH_TOOLS:-/tmp/ld-bench-tools}"
REQUESTS="${REQUESTS:-100000}"
MITM_REQUESTS="${MITM_REQUESTS:-5000}"
CONCURRENCY="${CONCURRENCY:-20}"
LATENCY_SAMPLES="${LATENCY_SAMPLES:-2000}"
KEEP="" ; [ "${KEEP_ALIVE:-0}" = 1 ] && KEEP="-k"
PYTHON="${PYTHON:-python3}"

# Loopback only: no proxy variable from the environment may reroute the traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

log() { printf '[bench] %s\n' "$*" >&2; }

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v ab >/dev/null 2>&1 || need_apt+=(apache2-utils)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [ ! -x "$TOOLS/venv/bin/mitmdump" ]; then
  log "pip install mitmproxy into $TOOLS/venv"
  "$PYTHON" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q mitmproxy
fi
MITMDUMP="$TOOLS/venv/bin/mitmdump"

log "cargo build --release --bin ld"
(cd "$ROOT" && cargo build --release --quiet --bin ld)
LD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ld"

WORK="$(mktemp -d /tmp/ld-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  log "nothing listens on $1"
  tail -n 20 "$WORK"/*.log "$WORK"/nginx/error.log >&2 2>/dev/null || true
  return 1
}

ORIGIN_PORT="$(free_port)"; LD_PORT="$(free_port)"; MITM_PORT="$(free_port)"
mkdir -p "$WORK/www" "$WORK/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
# nginx workers run as an unprivileged user: the document root must be readable to them.
chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK/www/index.html"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
    root $WORK/www;
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log"
wait_port "$ORIGIN_PORT"
URL="http://127.0.0.1:$ORIGIN_PORT/index.html"

LD_DATA_DIR="$WORK/data" "$LD_BIN" record --quiet --proxy "127.0.0.1:$LD_PORT" -o "$WORK/ld.har" \
  2>"$WORK/ld.log" &
LD_PID=$!; PIDS+=("$LD_PID")
"$MITMDUMP" -q --listen-host 127.0.0.1 --listen-port "$MITM_PORT" --set hardump="$WORK/mitm.har" \
  >"$WORK/mitm.log" 2>&1 &
MITM_PID=$!; PIDS+=("$MITM_PID")
wait_port "$LD_PORT"; wait_port "$MITM_PORT"

# ab: requests per second and the 50% line, for one run.
ab_run() { # n, extra args...
  local n="$1"; shift
  ab -q $KEEP -n "$n" -c "$CONCURRENCY" "$@" "$URL" > "$WORK/ab.out" 2>&1 || { cat "$WORK/ab.out" >&2; return 1; }
  local failed rps p50
  failed="$(awk '/^Failed requests:/ {print $3}' "$WORK/ab.out")"
  rps="$(awk '/^Requests per second:/ {print $4}' "$WORK/ab.out")"
  p50="$(awk '/^  50%/ {print $2}' "$WORK/ab.out")"
  echo "$rps $p50 $failed"
}

# Median time of one request on a new connection, in ms, direct or through a proxy.
latency() { # proxy-port or ""
  "$PYTHON" - "$ORIGIN_PORT" "$LATENCY_SAMPLES" "${1:-}" <<'PY'
import http.client, statistics, sys, time
origin, samples, proxy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
times = []
for i in range(samples + 50):
    t = time.perf_counter()
    if proxy:
        c = http.client.HTTPConnection("127.0.0.1", int(proxy))
        c.request("GET", f"http://127.0.0.1:{origin}/index.html")
    else:
        c = http.client.HTTPConnection("127.0.0.1", origin)
        c.request("GET", "/index.html")
    r = c.getresponse(); r.read(); c.close()
    if i >= 50:  # warm-up excluded
        times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.3f}")
PY
}

log "warm-up"
ab_run 2000 >/dev/null
ab_run 2000 -X "127.0.0.1:$LD_PORT" >/dev/null
ab_run 200 -X "127.0.0.1:$MITM_PORT" >/dev/null

log "latency, $LATENCY_SAMPLES sequential requests each"
LAT_DIRECT="$(latency "")"
LAT_LD="$(latency "$LD_PORT")"
LAT_MITM="$(latency "$MITM_PORT")"

log "direct: $REQUESTS requests, $CONCURRENCY concurrent"
read -r RPS_DIRECT P50_DIRECT FAIL_DIRECT < <(ab_run "$REQUESTS")

log "ld record: $REQUESTS requests, RSS sampled every second"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$LD_PID/status"; }
RSS_START="$(rss)"
( while kill -0 "$LD_PID" 2>/dev/null; do rss >> "$WORK/rss.txt" 2>/dev/null || true; sleep 1; done ) &
SAMPLER=$!; PIDS+=("$SAMPLER")
read -r RPS_LD P50_LD FAIL_LD < <(ab_run "$REQUESTS" -X "127.0.0.1:$LD_PORT")
RSS_END="$(rss)"
kill "$SAMPLER" 2>/dev/null || true

log "mitmdump: $MITM_REQUESTS requests"
read -r RPS_MITM P50_MITM FAIL_MITM < <(ab_run "$MITM_REQUESTS" -X "127.0.0.1:$MITM_PORT")

kill -TERM "$LD_PID"; wait "$LD_PID" || true
kill -INT "$MITM_PID"; wait "$MITM_PID" || true
LD_ENTRIES="$("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' "$WORK/ld.har")"

RSS_SAMPLES="$(tr '\n' ' ' < "$WORK/rss.txt")"
RSS_MAX="$(sort -n "$WORK/rss.txt" | tail -1)"
RSS_MID="$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$WORK/rss.txt")"
"$PYTHON" - <<PY
d, l, m = $RPS_DIRECT, $RPS_LD, $RPS_MITM
print(f"origin: nginx (1 worker), 1 KiB static file; client: ab -c $CONCURRENCY ${KEEP:-(no keep-alive)}")
print(f"{'':12}{'req/s':>10}{'ab p50 ms':>11}{'failed':>8}{'added median ms':>17}")
print(f"{'direct':12}{d:>10.0f}{'$P50_DIRECT':>11}{'$FAIL_DIRECT':>8}{'-':>17}")
print(f"{'ld record':12}{l:>10.0f}{'$P50_LD':>11}{'$FAIL_LD':>8}{$LAT_LD - $LAT_DIRECT:>17.3f}")
print(f"{'mitmdump':12}{m:>10.0f}{'$P50_MITM':>11}{'$FAIL_MITM':>8}{$LAT_MITM - $LAT_DIRECT:>17.3f}")
print(f"ld record / mitmdump: {l / m:.1f}x   ld record / direct: {l / d:.2f}")
print(f"sequential median latency (ms): direct $LAT_DIRECT, ld record $LAT_LD, mitmdump $LAT_MITM")
print(f"ld record RSS (KiB) over $REQUESTS requests: start $RSS_START, median $RSS_MID, max $RSS_MAX, end $RSS_END")
print(f"ld record HAR entries: $LD_ENTRIES")
PY
log "RSS samples (KiB, 1 s apart): $RSS_SAMPLES"
