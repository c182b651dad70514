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

# The container: no Docker engine runs here, so lint the Dockerfile and build the release
# binary exactly as the Dockerfile does (static OpenSSL), then check its dynamic libraries.
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
echo "== release build as in the Dockerfile"
bash scripts/build-release.sh

# One closing line for the whole run (cargo's last "test result" is the empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
