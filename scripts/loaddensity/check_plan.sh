#!/usr/bin/env bash
# Checks action JSON plans with LoadDensity 0.0.79: read as its executor reads them,
# every action bound to its command, then linted. No load test is started.
#
# Usage: scripts/loaddensity/check_plan.sh [-v] PLAN...
# Prints one line per file; exits 1 if any file has a read error or an error-severity finding.
#
# Environment:
#   LD_VENV                  venv to use/create (default /tmp/.venv-ld)
#   LOADDENSITY_VERSION      je-load-density version (default 0.0.79)
#   PYTHON                   interpreter that creates the venv (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LD_VENV:-/tmp/.venv-ld}"
VERSION="${LOADDENSITY_VERSION:-0.0.79}"
PYTHON="${PYTHON:-python3}"

if [ "$#" -eq 0 ]; then
  echo "usage: $0 [-v] PLAN..." >&2
  exit 2
fi

# shellcheck source=scripts/loaddensity/venv.sh
. "$HERE/venv.sh"
ensure_loaddensity_venv "$VENV" "$VERSION" "$PYTHON"

exec "$VENV/bin/python" "$HERE/check_plan.py" "$@"
