#!/usr/bin/env bash
# Reference run (not a test): does ld read curl commands the way the npm package curlconverter
# does? Installs curlconverter in a temporary directory, generates a varied corpus of curl
# commands (every option ld's importer handles, quoting styles, continuations), converts each
# with both, compares method, URL, headers and body, and prints the agreement rate and the
# disagreements by kind.
#
#   scripts/compat/curl_agreement.sh            # 240 commands
#   COUNT=500 SEED=7 scripts/compat/curl_agreement.sh
#   VERBOSE=1 scripts/compat/curl_agreement.sh  # print every disagreement
#
# Where the two disagree, curl itself is the judge. Checked against curl 7.88.1 with a local
# listener, curl (and so ld) differs from curlconverter 4.12 in three ways the corpus hits:
# an `-H 'Authorization: ...'` wins over `-u` (curlconverter keeps Basic); every repeated
# `-H` line is sent (curlconverter sometimes keeps one); newlines inside `--data-raw` are sent
# (curlconverter drops them).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$root" && cargo build -q --bin ld)
# A private copy: a rebuild of the workspace during the run must not swap the binary.
cp "${CARGO_TARGET_DIR:-$root/target}/debug/ld" "$work/ld-under-test"
ld_bin="$work/ld-under-test"

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "curlconverter@${CURLCONVERTER_VERSION:-4}" >/dev/null 2>&1
cp "$root/scripts/compat/curl_agreement.mjs" "$work/"
node curl_agreement.mjs "$ld_bin" "${COUNT:-240}" "${SEED:-1}"
