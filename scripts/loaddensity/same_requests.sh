#!/usr/bin/env bash
# For every golden plan, LoadDensity 0.0.79 and ld each replay it against one recording server;
# the two must have sent the same methods, request targets, headers and body bytes (see
# same_requests.py for what is compared and how plans are made comparable).
#
# Usage: scripts/loaddensity/same_requests.sh LD_BIN [PLAN...]   (default: fixtures/*/*.plan.json)
# Environment: LD_VENV, LOADDENSITY_VERSION, PYTHON as for check_plan.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${LD_VENV:-/tmp/.venv-ld}"
VERSION="${LOADDENSITY_VERSION:-0.0.79}"
PYTHON="${PYTHON:-python3}"

if [ "$#" -lt 1 ]; then
  echo "usage: $0 LD_BIN [PLAN...]" >&2
  exit 2
fi
LD_BIN="$1"
shift
if [ "$#" -eq 0 ]; then
  set -- "$ROOT"/fixtures/*/*.plan.json
fi

# shellcheck source=scripts/loaddensity/venv.sh
. "$HERE/venv.sh"
ensure_loaddensity_venv "$VENV" "$VERSION" "$PYTHON"

exec "$VENV/bin/python" "$HERE/same_requests.py" "$LD_BIN" "$@"
