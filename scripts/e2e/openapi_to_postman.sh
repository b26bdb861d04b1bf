#!/usr/bin/env bash
# The OpenAPI and Swagger descriptions that openapi-to-postmanv2 4.0.0 tests itself with
# (npm package, test/data/valid_* and invalid_*, about 100 files, JSON and YAML, some of several
# megabytes) go through `ld import` with the format detected, never named:
#
#   - every valid_* description imports with exit 0 and at least one task;
#   - every invalid_* description is refused (a non-zero exit that is not a panic) or imported
#     with a warning that names the problem by JSON pointer (`warning: /info/title is missing`);
#   - nothing panics (exit 101).
#
#   scripts/e2e/openapi_to_postman.sh LD_BINARY        (or LD_BIN=... scripts/e2e/openapi_to_postman.sh)
#
# Builds nothing: it takes the ld binary. Downloads the package with `npm pack` into a temporary
# directory, removed at the end; nothing is installed or committed.
set -euo pipefail

LD="${1:-${LD_BIN:-}}"
PACKAGE="openapi-to-postmanv2@4.0.0"

log() { printf '[openapi-to-postman] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[ -n "$LD" ] || die "usage: $0 LD_BINARY"
[ -x "$LD" ] || die "$LD is not an executable"
command -v npm >/dev/null || die "npm is needed to fetch $PACKAGE"
command -v python3 >/dev/null || die "python3 is needed to read the plans"

# Descriptions that hold only `webhooks` (requests the API itself sends, OpenAPI 3.1) and no
# `paths`: there is no operation to call, so `ld import` answers "nothing to import" (exit 2).
NO_OPERATIONS=(
  "valid_openapi31X/json/webhooks.json"
  "valid_openapi31X/webhooks/payments-webhook-with-servers-in-webhook.yaml"
  "valid_openapi31X/webhooks/payments-webhooks.yaml"
  "valid_openapi31X/yaml/marketPayNotificationService4.yaml"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null && tar xzf ./*.tgz)
data="$work/package/test/data"
[ -d "$data" ] || die "$PACKAGE has no test/data"

# The plan's HTTP tasks, wherever they sit (a plan may nest them in groups).
tasks() {
  python3 - "$1" <<'PY'
import json, sys
def count(v):
    if isinstance(v, dict):
        return ("request_url" in v) + sum(count(x) for x in v.values())
    if isinstance(v, list):
        return sum(count(x) for x in v)
    return 0
print(count(json.load(open(sys.argv[1]))))
PY
}

failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }
declare -A seen=()

check() {
  local group="$1" rel="$2" code plan="$work/plan.json" err="$work/stderr"
  rm -f "$plan"
  set +e
  "$LD" import "$data/$rel" -o "$plan" >/dev/null 2>"$err"
  code=$?
  set -e
  seen[$group]=$(( ${seen[$group]:-0} + 1 ))
  if [ "$code" -eq 101 ] || grep -q "panicked" "$err"; then
    fail "$rel: ld panicked: $(head -c 400 "$err")"
    return
  fi
  case "$group" in
    valid_*)
      local expected_none=0 n
      for name in "${NO_OPERATIONS[@]}"; do [ "$name" = "$rel" ] && expected_none=1; done
      if [ "$expected_none" -eq 1 ]; then
        [ "$code" -eq 2 ] && grep -q "nothing to import" "$err" \
          || fail "$rel: expected exit 2 \"nothing to import\", got $code: $(head -c 400 "$err")"
        return
      fi
      [ "$code" -eq 0 ] || { fail "$rel: exit $code: $(head -c 400 "$err")"; return; }
      n="$(tasks "$plan")"
      [ "$n" -ge 1 ] || fail "$rel: imported with no task"
      ;;
    invalid_*)
      if [ "$code" -eq 0 ]; then
        grep -q "^warning: /" "$err" \
          || fail "$rel: accepted without a warning naming the problem: $(head -c 400 "$err")"
      else
        grep -q "error" "$err" || fail "$rel: exit $code without an error message"
      fi
      ;;
  esac
}

groups=(valid_openapi valid_openapi31X valid_swagger invalid_openapi invalid_openapi31X invalid_swagger)
for group in "${groups[@]}"; do
  [ -d "$data/$group" ] || die "$PACKAGE has no test/data/$group"
  while IFS= read -r -d '' file; do
    check "$group" "${file#"$data/"}"
  done < <(find "$data/$group" -type f -print0 | sort -z)
done

total=0
for group in "${groups[@]}"; do
  log "$group: ${seen[$group]:-0} descriptions"
  total=$((total + ${seen[$group]:-0}))
done
[ "$total" -ge 90 ] || fail "only $total descriptions found; expected about 100"
[ "$failures" -eq 0 ] || die "$failures of $total descriptions failed"
log "ok: $total descriptions"
