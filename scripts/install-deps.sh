#!/usr/bin/env bash
# Installs the Debian packages mqtt-sentinel's build and tests need, when missing.
# Root only installs; as another user it lists what is missing and fails.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

have_cmd mosquitto || need+=(mosquitto)
have_cmd mosquitto_sub || need+=(mosquitto-clients)
have_cmd promtool || need+=(prometheus)       # promtool, and prometheus for later tests
have_cmd prometheus-alertmanager || need+=(prometheus-alertmanager)  # the alertmanager receiver test
have_cmd cmake || need+=(cmake)               # builds the bundled Paho C library
have_cmd openssl || need+=(openssl)           # test certificates
have_cmd cc || need+=(gcc)
have_pkg libssl-dev || need+=(libssl-dev)     # Paho C with TLS
have_cmd curl || need+=(curl)                 # scripts/demo.sh and the benchmark

if ((${#need[@]} == 0)); then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root to install them)" >&2
    exit 1
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts packaged daemons where it can; the tests start their own on free ports.
for svc in mosquitto prometheus; do
    pkill -x "$svc" 2>/dev/null || true
done
pkill -f '^/usr/bin/prometheus-alertmanager' 2>/dev/null || true
