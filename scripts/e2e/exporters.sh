#!/usr/bin/env bash
# End to end: Debian's prometheus (scraping, and as a remote-write receiver) and influxdb
# receive what `ld replay --out` sends, and their query APIs return the run's request count (scripts/e2e/exporters.py does the work).
#
#   scripts/e2e/exporters.sh LD_BIN
#
# Installs what is missing with apt (prometheus, influxdb); python3 must be present.
# The check starts its own servers on 127.0.0.1 with scratch directories and free ports.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LD_BIN="${1:?usage: exporters.sh LD_BIN}"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v influxd >/dev/null || missing+=(influxdb)
if [ ${#missing[@]} -gt 0 ]; then
  command -v dpkg >/dev/null || { echo "exporters-e2e: installs with apt (Debian)" >&2; exit 1; }
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec timeout 300 python3 "$HERE/exporters.py" "$LD_BIN"
