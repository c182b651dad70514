#!/usr/bin/env bash
# Every test of mqtt-sentinel, as CI runs it: install what is missing (as root), then
# formatting, lints, unit and integration tests (real mosquitto, promtool, openssl).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked
