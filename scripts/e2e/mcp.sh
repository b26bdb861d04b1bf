#!/usr/bin/env bash
# End to end, `ld mcp` as an assistant's MCP client sees it: the Python `mcp` SDK's stdio client
# (scripts/e2e/mcp_client.py) starts `ld mcp --root DIR`, initializes, lists the tools, imports a
# HAR, replays it against a local API (Python's http.server on 127.0.0.1), sets a baseline,
# replays against a broken API with a diff, runs a short bounded load with progress, and is
# refused a path outside the root. Every result is read from the structured content.
#
#   scripts/e2e/mcp.sh LD_BINARY        (or LD_BIN=... scripts/e2e/mcp.sh)
#
# Builds nothing: it takes the ld binary. Creates (once) a venv in /tmp with the pinned `mcp`
# release from PyPI. All traffic stays on 127.0.0.1 and the client gives up after 120 s.
#
# Environment:
#   LD_BIN      the ld binary, when no argument is given
#   MCP_VENV    the venv [default: /tmp/ld-mcp-venv]
#   PYTHON      the Python that creates the venv [default: python3]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LD="${1:-${LD_BIN:-}}"
VENV="${MCP_VENV:-/tmp/ld-mcp-venv}"
PYTHON="${PYTHON:-python3}"
MCP_VERSION="2.3.0"

log() { printf '[mcp-e2e] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# Loopback only: never let a proxy variable from the environment reroute the traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

[ -n "$LD" ] || die "usage: mcp.sh LD_BINARY (or set LD_BIN)"
[ -x "$LD" ] || die "no ld binary at $LD"
command -v "$PYTHON" >/dev/null || die "python3 is needed"

have=""
if [ -x "$VENV/bin/python" ]; then
  have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true)"
fi
if [ "$have" != "$MCP_VERSION" ]; then
  log "installing mcp==$MCP_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_VERSION" >&2
fi

log "$("$LD" --version), mcp $MCP_VERSION"
timeout -k 5 150 "$VENV/bin/python" "$HERE/mcp_client.py" "$LD"
