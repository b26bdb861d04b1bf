#!/usr/bin/env bash
# HAR import benchmark: LoadDensity's har_to_action_json against `ld import`, on the same
# synthetic 20,000-entry HAR (scripts/bench/gen_har.py), each run RUNS times under
# /usr/bin/time for wall time and peak RSS.
#
# Usage: scripts/bench/import.sh
# Environment:
#   LD_BIN      the ld binary (default: target/release/ld, built here with cargo build --release --bin ld)
#   N           entries in the HAR (default 20000), RUNS (default 3)
#   BENCH_DIR   where the HAR and the outputs go (default /tmp/ld-bench)
#   LD_VENV     venv with je-load-density (default /tmp/.venv-ld), LOADDENSITY_VERSION (default 0.0.79)
#   SKIP_LD=1 / SKIP_LOADDENSITY=1   measure only one side
# Exit status: 0 when every measured tool succeeded every run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
N="${N:-20000}"
RUNS="${RUNS:-3}"
BENCH_DIR="${BENCH_DIR:-/tmp/ld-bench}"
VENV="${LD_VENV:-/tmp/.venv-ld}"
LD_VERSION="${LOADDENSITY_VERSION:-0.0.79}"
PYTHON="${PYTHON:-python3}"
SKIP_LD="${SKIP_LD:-0}"
SKIP_LOADDENSITY="${SKIP_LOADDENSITY:-0}"

log() { printf '[bench] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"

if [ ! -x /usr/bin/time ]; then
  log "installing GNU time"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

# ld (by path only: a binary called ld must never be put on PATH, it is the system linker).
LD_OK=1
if [ "$SKIP_LD" = 1 ]; then
  LD_OK=0
elif [ -z "${LD_BIN:-}" ]; then
  LD_BIN="$ROOT/target/release/ld"
  log "cargo build --release --bin ld"
  if ! (cd "$ROOT" && cargo build --release --bin ld >&2); then
    log "build failed: ld is not measured"
    LD_OK=0
  fi
fi
if [ "$LD_OK" = 1 ] && [ ! -x "$LD_BIN" ]; then
  log "no ld binary at $LD_BIN: ld is not measured"
  LD_OK=0
fi

if [ "$SKIP_LOADDENSITY" != 1 ]; then
  # shellcheck source=scripts/loaddensity/venv.sh
  . "$ROOT/scripts/loaddensity/venv.sh"
  ensure_loaddensity_venv "$VENV" "$LD_VERSION" "$PYTHON"
fi

HAR="$BENCH_DIR/bench-$N.har"
STAMP="$BENCH_DIR/bench-$N.har.gen"
# Regenerate when missing or when the generator changed (the output is deterministic).
GEN_SUM="$(sha256sum "$HERE/gen_har.py" | cut -d' ' -f1)"
if [ ! -s "$HAR" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$GEN_SUM" ]; then
  log "generating $HAR ($N entries)"
  "$PYTHON" "$HERE/gen_har.py" "$N" "$HAR"
  echo "$GEN_SUM" > "$STAMP"
fi
HAR_BYTES="$(stat -c %s "$HAR")"

FAILED=0
declare -A BEST RSS STATUS

# measure NAME CMD...: RUNS timed runs; keeps the best wall time and the highest peak RSS.
measure() {
  local name="$1"; shift
  local i out rc wall kb best="" rss=0
  for i in $(seq 1 "$RUNS"); do
    out="$BENCH_DIR/time-$name-$i.txt"
    rc=0
    /usr/bin/time -f '%e %M' -o "$out" "$@" >"$BENCH_DIR/stdout-$name.txt" 2>"$BENCH_DIR/stderr-$name.txt" || rc=$?
    if [ "$rc" -ne 0 ]; then
      log "$name run $i failed (exit $rc):"
      tail -n 5 "$BENCH_DIR/stderr-$name.txt" >&2 || true
      STATUS[$name]="failed (exit $rc)"
      FAILED=1
      return 0
    fi
    read -r wall kb < <(tail -n 1 "$out")
    log "$name run $i: ${wall}s, peak RSS ${kb} KiB"
    if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$wall"; fi
    [ "$kb" -gt "$rss" ] && rss="$kb"
  done
  BEST[$name]="$best"
  RSS[$name]="$rss"
  STATUS[$name]="ok"
}

if [ "$SKIP_LOADDENSITY" != 1 ]; then
  measure loaddensity "$VENV/bin/python" "$HERE/loaddensity_import.py" "$HAR" "$BENCH_DIR/out-loaddensity.json"
fi
if [ "$LD_OK" = 1 ]; then
  measure ld "$LD_BIN" import "$HAR" -o "$BENCH_DIR/out-ld.json"
elif [ "$SKIP_LD" != 1 ]; then
  STATUS[ld]="not available"
  FAILED=1
fi

echo
printf 'HAR: %s (%d entries, %.1f MB)\n' "$HAR" "$N" "$(awk -v b="$HAR_BYTES" 'BEGIN { print b / 1e6 }')"
printf '%-12s %12s %14s %13s %10s  %s\n' tool "best wall s" "peak RSS MB" "file MB" "RSS/file" status
for name in loaddensity ld; do
  [ -n "${STATUS[$name]:-}" ] || continue
  if [ "${STATUS[$name]}" = ok ]; then
    awk -v n="$name" -v w="${BEST[$name]}" -v kb="${RSS[$name]}" -v b="$HAR_BYTES" 'BEGIN {
      rss = kb * 1024 / 1e6; f = b / 1e6
      printf "%-12s %12.2f %14.1f %13.1f %10.2f  ok\n", n, w, rss, f, rss / f }'
  else
    printf '%-12s %12s %14s %13s %10s  %s\n' "$name" - - - - "${STATUS[$name]}"
  fi
done
if [ "${STATUS[loaddensity]:-}" = ok ] && [ "${STATUS[ld]:-}" = ok ]; then
  awk -v a="${BEST[loaddensity]}" -v b="${BEST[ld]}" 'BEGIN {
    if (b > 0) printf "speed ratio LoadDensity/ld: %.1fx\n", a / b
    else printf "speed ratio LoadDensity/ld: ld took under 0.01 s\n" }'
fi
exit "$FAILED"
