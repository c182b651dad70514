#!/usr/bin/env bash
# Build mqtt-sentinel and run it.
#
#   scripts/demo.sh                 # watch mqtt://localhost:1883 with the embedded default
#                                   # config; if nothing listens there, start a private
#                                   # loopback mosquitto on 1883 first ($SYS every second)
#   scripts/demo.sh mqtt://host:port  # watch that broker instead
#
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --locked
bin=target/release/mqtt-sentinel

. scripts/lib.sh

args=()
if [ $# -ge 1 ]; then
    printf 'brokers:\n  - name: demo\n    url: %s\n' "$1" >"$tmp/sentinel.yaml"
    args=(--config "$tmp/sentinel.yaml")
    echo "watching $1"
elif port_open 1883; then
    echo "a broker already listens on localhost:1883; watching it with the embedded default config"
else
    cat >"$tmp/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
sys_interval 1
persistence false
set_tcp_nodelay true
CONF
    mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
    pids+=($!)
    wait_port 1883 || { cat "$tmp/mosquitto.log"; echo "mosquitto did not start" >&2; exit 1; }
    echo "started a private mosquitto on 127.0.0.1:1883 (log: $tmp/mosquitto.log)"
fi

"$bin" "${args[@]}" &
pids+=($!)
cat <<MSG

mqtt-sentinel is running (Ctrl-C stops it):
  http://localhost:10883/          landing page with each broker's state
  http://localhost:10883/metrics   Prometheus metrics
  http://localhost:10883/healthz   liveness
  http://localhost:10883/readyz    readiness

MSG
wait "${pids[-1]}"
