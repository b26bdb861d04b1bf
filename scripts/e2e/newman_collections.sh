#!/usr/bin/env bash
# Imports every test collection newman 4.6.1 ships (v1, v2.0, v2.1, without `info`), each
# detected on its own: each must import with at least one task, and none may crash.
# Usage: scripts/e2e/newman_collections.sh path/to/ld
set -euo pipefail

ld=$(realpath "${1:?usage: $0 path/to/ld}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent newman@4.6.1 >/dev/null
tar xzf newman-4.6.1.tgz
pkg="$work/package"

# Collections that hold no request at all, so "nothing to import" (exit 2) is right for them.
# (none so far)
declare -A empty=()

ok=0 failed=0 tasks_total=0
mapfile -t collections < <(find "$pkg/test" -name '*collection*.json' | sort)
[ "${#collections[@]}" -ge 40 ] || { echo "expected about 45 collections, found ${#collections[@]}" >&2; exit 1; }
for c in "${collections[@]}"; do
  rel=${c#"$pkg/"}
  out="$work/plans/${rel//\//_}"
  mkdir -p "$work/plans"
  # newman's own tests run from the package's root, where their file paths start.
  set +e
  "$ld" import "$c" --working-dir "$pkg" -q -o "$out" 2>"$work/err"
  code=$?
  set -e
  if [ "$code" -eq 2 ] && [ -n "${empty[$rel]:-}" ]; then
    echo "empty (as expected): $rel"
    ok=$((ok + 1))
    continue
  fi
  if [ "$code" -ne 0 ]; then
    echo "FAILED (exit $code): $rel" >&2
    cat "$work/err" >&2
    failed=$((failed + 1))
    continue
  fi
  n=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(sum(len(a[1]["tasks"]["tasks"]) for a in p["load_density"] if a[0]=="LD_start_test"))' "$out")
  if [ "$n" -lt 1 ]; then
    echo "FAILED (no task): $rel" >&2
    failed=$((failed + 1))
    continue
  fi
  tasks_total=$((tasks_total + n))
  ok=$((ok + 1))
done
echo "newman 4.6.1 collections: ${#collections[@]} found, $ok imported ($tasks_total tasks), $failed failed"
[ "$failed" -eq 0 ]
