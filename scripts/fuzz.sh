#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, when a nightly toolchain
# and cargo-fuzz are present; otherwise says so and checks that the targets still compile.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
targets=(sys_payload config rules)
if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --help >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        echo "fuzz: $t for ${secs}s"
        cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=1024
    done
else
    echo "fuzz: SKIPPED: no nightly toolchain with cargo-fuzz here (cargo +nightly fuzz run <target>);"
    echo "      checking that the targets compile on stable instead (the proptest properties run in the test suite)"
    cargo check --quiet --manifest-path fuzz/Cargo.toml --bins
fi
