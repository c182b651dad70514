#!/usr/bin/env bash
# Installs the Debian packages mqtt-sentinel's build and tests need, when missing.
# Root only installs; as another user it lists what is missing and fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

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
have_cmd nats-server || need+=(nats-server)   # the NATS (MQTT 3.1.1 fallback) test
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)  # QoS 2 unsupported test
# the container image (scripts/build-image.sh) and the test that runs it (tests/it/container.rs);
# runc, not crun (which refuses these VMs' hybrid cgroups), so crun is not installed
have_cmd buildah || need+=(buildah)
have_cmd podman || need+=(podman)
have_cmd runc || need+=(runc)
[ -r /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)  # the image's CA bundle
have_cmd node || need+=(nodejs)               # aedes, a Node.js broker (below)
have_cmd npm || need+=(npm)

# amqtt, a Python broker with a $SYS tree, is on PyPI only (pinned: the fixture is its 0.12.1).
if ! have_cmd amqtt; then
    echo "installing: amqtt==0.12.1 (PyPI)" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'amqtt==0.12.1' >&2
    hash -r
    have_cmd amqtt || { echo "amqtt installed but not on PATH ($(python3 -m site --user-base)/bin?)" >&2; exit 1; }
fi

# aedes (with aedes-stats for its $SYS tree) is on npm only, pinned. Installed into the work
# tree, where tests/it/support/brokers.rs (`Broker::aedes`) finds it without network.
install_aedes() {
    local dir="$root/target/tools/aedes" want="aedes@1.2.0 aedes-stats@4.0.0" have
    have=$(cd "$dir" 2>/dev/null && node -p 'const v = (p) => require(`./node_modules/${p}/package.json`).version; `aedes@${v("aedes")} aedes-stats@${v("aedes-stats")}`' 2>/dev/null || true)
    [ "$have" = "$want" ] && return 0
    # aedes 1.x declares engines.node >=20 (Debian 12's nodejs is 18.20: too old)
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if ((major < 20)); then
        echo "aedes SKIPPED: aedes 1.2.0 needs Node.js >= 20, this node is $(node --version); the aedes tests print SKIPPED" >&2
        return 0
    fi
    # the whole dependency tree is pinned by the lockfile in tests/it/support/aedes/
    echo "installing: $want (npm ci) into $dir" >&2
    mkdir -p "$dir"
    cp "$root/tests/it/support/aedes/package.json" "$root/tests/it/support/aedes/package-lock.json" "$dir/"
    npm ci --silent --no-audit --no-fund --prefix "$dir" >&2
}

if ((${#need[@]} == 0)); then
    install_aedes
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
for svc in mosquitto prometheus nats-server epmd; do
    pkill -x "$svc" 2>/dev/null || true
done
pkill -f '^/usr/bin/prometheus-alertmanager' 2>/dev/null || true
pkill -f '^/usr/lib/erlang/erts-[^ ]*/bin/beam' 2>/dev/null || true   # a packaged rabbitmq node
install_aedes
