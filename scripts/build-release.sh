#!/usr/bin/env bash
# Build the release binary exactly as the Dockerfile does (static OpenSSL via Paho's
# vendored-ssl) and check what the distroless image relies on: no dynamic libssl/libcrypto,
# only glibc and libgcc, and the binary runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --features vendored-ssl
bin=target/release/mqtt-sentinel
if ldd "$bin" | grep -E 'libssl|libcrypto'; then
    echo "release binary links OpenSSL dynamically; the distroless image has none" >&2
    exit 1
fi
echo "dynamic libraries (all in gcr.io/distroless/cc-debian12):"
ldd "$bin" | awk '{print "  " $1}'
"$bin" --version
"$bin" check >/dev/null
ls -l "$bin" | awk '{printf "size: %.1f MiB\n", $5 / 1048576}'
