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
# The container image (scripts/build-image.sh: buildah, no registry, the release binary as the
# Dockerfile builds it) before the tests: tests/it/container.rs runs it as a sidecar (and calls
# the script again, which finds it up to date).
echo "== release build as in the Dockerfile, and the container image from it"
bash scripts/build-image.sh
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"

echo "== cargo deny (supply chain: licenses, bans, sources, advisories)"
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked --quiet cargo-deny@0.20.2
cargo deny --log-level error check bans licenses sources
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny --log-level error check advisories
else
    echo "cargo deny: advisories NOT checked: the RustSec database (github.com) is unreachable from this machine"
fi

echo "== fuzz targets"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh

# The container: no Docker engine runs here; the image is built above without one, and the
# Dockerfile it mirrors is linted here.
echo "== Dockerfile lint (dockerfilelint from npm)"
if command -v npm >/dev/null 2>&1; then
    tools=target/tools
    [ -x "$tools/node_modules/.bin/dockerfilelint" ] ||
        npm install --silent --no-audit --no-fund --prefix "$tools" dockerfilelint@1 >/dev/null
    "$tools/node_modules/.bin/dockerfilelint" Dockerfile
else
    echo "npm is missing: Dockerfile not linted" >&2
    exit 1
fi

# One closing line for the whole run (cargo's last "test result" is the empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
