#!/usr/bin/env bash
# Fuzzes the HAR importer, the plan reader and the plan compiler with libFuzzer (cargo-fuzz), seeded with the HAR
# fixtures. Usage: scripts/fuzz.sh [SECONDS per target, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/har_import fuzz/corpus/plan_parse fuzz/corpus/plan_compile
cargo fuzz run har_import fuzz/corpus/har_import fixtures/har -- -max_total_time="$seconds" -max_len=65536
cargo fuzz run plan_parse fuzz/corpus/plan_parse fixtures/har -- -max_total_time="$seconds" -max_len=16384
cargo fuzz run plan_compile fuzz/corpus/plan_compile fixtures/har -- -max_total_time="$seconds" -max_len=16384
