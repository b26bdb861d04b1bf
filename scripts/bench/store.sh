#!/usr/bin/env bash
# Run-store benchmark: what storing every request costs `ld replay`, and how fast `ld diff`
# compares two large runs. Not a test: it prints figures. Traffic goes to 127.0.0.1 only.
#
#   1. a one-worker nginx pinned to core 0 serves a small JSON file; `ld replay` pinned to
#      core 1 makes REQUESTS requests (a status assertion on each), alternately with
#      --no-store and storing into one database, ROUNDS times each (which goes first
#      alternates); wall and CPU times are printed side by side with the overhead;
#   2. `ld diff` of the last two stored runs (REQUESTS requests each), timed, and
#      `ld runs show` of one of them.
#
# Usage: scripts/bench/store.sh
# Environment:
#   LD_BIN     the ld binary (default: target/release/ld, built here)
#   REQUESTS   requests per run (default 1000000)
#   USERS      virtual users (default 50)
#   ROUNDS     runs of each kind (default 3)
#   LD_CPUS    cores ld may run on (default 1: the core nginx leaves free; 0-1 lets the
#              store's writer thread use what nginx leaves of core 0)
#   BENCH_DIR  work directory (default /tmp/ld-bench-store)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REQUESTS="${REQUESTS:-1000000}"
USERS="${USERS:-50}"
ROUNDS="${ROUNDS:-3}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench-store}"
PORT="${PORT:-18091}"
ITERATIONS=$(( REQUESTS / USERS ))
LD_CPUS="${LD_CPUS:-1}"

log() { printf '[bench] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# ld by path only: a binary called ld must never be put on PATH (it is the system linker).
if [ -z "${LD_BIN:-}" ]; then
  LD_BIN="$ROOT/target/release/ld"
  log "cargo build --release --bin ld"
  (cd "$ROOT" && cargo build --release --bin ld >&2)
fi

# A copy: the shared target directory may be rebuilt while the benchmark runs.
cp "$LD_BIN" "$BENCH_DIR/ld-under-test"
LD_BIN="$BENCH_DIR/ld-under-test"

NG="$BENCH_DIR/nginx"
mkdir -p "$NG/html" "$NG/logs" "$NG/tmp"
printf '{"id":17,"name":"lamp","tags":["a","b"],"price":12.5}\n' > "$NG/html/item.json"
cat > "$NG/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  types { application/json json; }
  client_body_temp_path $NG/tmp; proxy_temp_path $NG/tmp; fastcgi_temp_path $NG/tmp;
  uwsgi_temp_path $NG/tmp; scgi_temp_path $NG/tmp;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    root $NG/html;
  }
}
CONF
taskset -c 0 "$NGINX" -c "$NG/nginx.conf" -p "$NG" &
NGINX_PID=$!
trap 'kill "$NGINX_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done

cat > "$BENCH_DIR/actions.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": $USERS,
  "spawn_rate": 1000, "test_time": 600, "tasks": [
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/item.json", "name": "GET /item",
     "assertions": [{"type": "status_code", "value": 200}]}]}]]}
JSON

now() { date +%s.%N; }
DB="$BENCH_DIR/ld.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
run_once() { # $1: store|no-store → prints "wall_s cpu_s" (cpu: user + system of ld)
  local args=(replay "$BENCH_DIR/actions.json" -q -u "$USERS" --spawn-rate 1000 -n "$ITERATIONS")
  if [ "$1" = no-store ]; then args+=(--no-store); else args+=(--db "$DB"); fi
  /usr/bin/time -f '%e %U %S' -o "$BENCH_DIR/time.txt" taskset -c "$LD_CPUS" "$LD_BIN" "${args[@]}" >/dev/null
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$BENCH_DIR/time.txt"
}

log "warm-up"
REQUESTS_SAVED=$ITERATIONS
ITERATIONS=$(( 20000 / USERS ))
run_once no-store >/dev/null
ITERATIONS=$REQUESTS_SAVED

plain=(); stored=(); plain_cpu=(); stored_cpu=()
# Alternate which kind goes first, so a machine whose load drifts favours neither.
for i in $(seq 1 "$ROUNDS"); do
  order=(no-store store)
  if [ $(( i % 2 )) -eq 0 ]; then order=(store no-store); fi
  for kind in "${order[@]}"; do
    log "round $i/$ROUNDS: $kind"
    read -r w c <<<"$(run_once "$kind")"
    if [ "$kind" = store ]; then stored+=("$w"); stored_cpu+=("$c"); else plain+=("$w"); plain_cpu+=("$c"); fi
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
pct() { echo "($2 - $1) / $1 * 100" | bc -l; }
mp=$(median "${plain[@]}"); ms=$(median "${stored[@]}")
np=$(minimum "${plain[@]}"); ns=$(minimum "${stored[@]}")
cp=$(median "${plain_cpu[@]}"); cs=$(median "${stored_cpu[@]}")

echo
echo "== storing a run of $REQUESTS requests ($USERS users, nginx on core 0, ld on cores $LD_CPUS)"
printf '%-8s %12s %12s %14s %14s\n' round "plain wall s" "stored wall s" "plain cpu s" "stored cpu s"
for i in $(seq 0 $(( ROUNDS - 1 ))); do
  printf '%-8s %12.2f %12.2f %14.2f %14.2f\n' "$(( i + 1 ))" "${plain[$i]}" "${stored[$i]}" "${plain_cpu[$i]}" "${stored_cpu[$i]}"
done
printf '%-8s %12.2f %12.2f %14.2f %14.2f\n' median "$mp" "$ms" "$cp" "$cs"
printf '%-8s %12.2f %12.2f\n' best "$np" "$ns"
printf 'requests/s (best run): %.0f without the store, %.0f with it\n' \
  "$(echo "$REQUESTS / $np" | bc -l)" "$(echo "$REQUESTS / $ns" | bc -l)"
printf 'overhead of storing, wall time: %+.1f%% best run, %+.1f%% median (target: under 5%%)\n' \
  "$(pct "$np" "$ns")" "$(pct "$mp" "$ms")"
printf 'overhead of storing, CPU time of ld (user+system, median): %+.1f%%\n' "$(pct "$cp" "$cs")"
echo "(wall times on a shared machine vary with its load; the best run is the least disturbed)"
printf 'database: %s MB for %s stored runs\n' "$(( $(stat -c %s "$DB") / 1000000 ))" "$ROUNDS"

ids=$("$LD_BIN" runs list --db "$DB" --json | grep -o '"id": [0-9]*' | head -2 | grep -o '[0-9]*' | tr '\n' ' ')
read -r cur base <<<"$ids"
if [ -z "${base:-}" ]; then
  echo "(one stored run: no diff; use ROUNDS=2 or more)"
  exit 0
fi
t0=$(now)
"$LD_BIN" diff --db "$DB" --against "$base" "$cur" >/dev/null || true
t1=$(now)
t2=$(now)
"$LD_BIN" runs show "$cur" --db "$DB" >/dev/null
t3=$(now)
echo
echo "== ld diff of two runs of $REQUESTS requests (runs $base and $cur)"
printf 'ld diff: %.3f s (target: under 2 s)\n' "$(echo "$t1 - $t0" | bc -l)"
printf 'ld runs show: %.3f s\n' "$(echo "$t3 - $t2" | bc -l)"
