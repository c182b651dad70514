#!/usr/bin/env bash
# The liveness rule's two figures (issue 20), in ONE run against loopback mosquittos:
#   quiet   a broker whose ACL silently drops the probe (`topic read mqtt-sentinel/#`, MQTT
#           3.1.1 at QoS 1 and MQTT 5 at QoS 0, `sys_interval 10`): over DURATION seconds,
#           every second's scrape of `mqtt_up` and the `unresponsive` disconnects
#   frozen  a healthy broker SIGSTOPped FREEZES times: how long after the probe was sent the
#           session is declared unresponsive (`silent_s` in the sidecar's log; the promise is
#           at most the probe timeout + 1 s), next to the probe timeout itself
#
#   scripts/bench-liveness.sh [DURATION_SECONDS] [FREEZES]   (default 600 and 5; 10..3600, 1..20)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
freezes=${2:-5}
if ! [[ "$duration" =~ ^[0-9]+$ ]] || ((duration < 10 || duration > 3600)); then
    echo "duration must be 10..3600 seconds" >&2
    exit 2
fi
if ! [[ "$freezes" =~ ^[0-9]+$ ]] || ((freezes < 1 || freezes > 20)); then
    echo "freezes must be 1..20" >&2
    exit 2
fi
bash scripts/install-deps.sh
cargo build --release --locked --quiet
bin=$PWD/target/release/mqtt-sentinel
. scripts/lib.sh

acl_port=$(free_port)
printf 'topic read $SYS/#\ntopic read mqtt-sentinel/#\n' >"$tmp/acl"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nsys_interval 10\nacl_file %s\n' \
    "$acl_port" "$tmp/acl" >"$tmp/acl.conf"
mosquitto -c "$tmp/acl.conf" >"$tmp/acl.log" 2>&1 &
pids+=($!)
ok_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nsys_interval 10\n' "$ok_port" >"$tmp/ok.conf"
mosquitto -c "$tmp/ok.conf" >"$tmp/ok.log" 2>&1 &
frozen_pid=$!
pids+=($frozen_pid)
wait_port "$acl_port" && wait_port "$ok_port" || { cat "$tmp"/*.log; exit 1; }

hport=$(free_port)
timeout_s=2
cat >"$tmp/sentinel.yaml" <<EOF
listen: "127.0.0.1:$hport"
log: {level: warn}
brokers:
  - name: acl-v311-qos1
    url: mqtt://127.0.0.1:$acl_port
    protocol: v3.1.1
    probes: [{name: p, qos: 1, interval: 1s, timeout: ${timeout_s}s}]
  - name: acl-v5-qos0
    url: mqtt://127.0.0.1:$acl_port
    protocol: v5
    probes: [{name: p, qos: 0, interval: 1s, timeout: ${timeout_s}s}]
  - name: frozen
    url: mqtt://127.0.0.1:$ok_port
    protocol: v3.1.1
    reconnect: {initial_backoff: 100ms, max_backoff: 500ms}
    probes: [{name: p, qos: 0, interval: 1s, timeout: ${timeout_s}s}]
EOF
"$bin" --config "$tmp/sentinel.yaml" >"$tmp/sentinel.log" 2>&1 &
pids+=($!)
wait_port "$hport" || { cat "$tmp/sentinel.log"; exit 1; }

metric() { # metric NAME BROKER [LABEL_FILTER]: the value, or 0
    curl -fsS "http://127.0.0.1:$hport/metrics" |
        awk -v n="$1" -v b="broker=\"$2\"" -v f="${3:-}" \
            'index($0, n"{") == 1 && index($0, b) && index($0, f) { v = $NF } END { print v + 0 }'
}

# The frozen broker first, while the quiet run's clock has not started.
for i in $(seq "$freezes"); do
    for _ in $(seq 100); do [ "$(metric mqtt_probe_success frozen)" = 1 ] && break; sleep 0.1; done
    kill -STOP "$frozen_pid"
    before=$(metric mqtt_disconnects_total frozen 'reason="unresponsive"')
    for _ in $(seq 200); do
        [ "$(metric mqtt_disconnects_total frozen 'reason="unresponsive"')" != "$before" ] && break
        sleep 0.05
    done
    kill -CONT "$frozen_pid"
    for _ in $(seq 200); do [ "$(metric mqtt_up frozen)" = 1 ] && break; sleep 0.05; done
done
echo "frozen broker (probe timeout ${timeout_s} s, QoS 0 over 3.1.1): declared unresponsive this long after the probe was sent:"
grep -o 'silent_s=[0-9.]*' "$tmp/sentinel.log" | sed 's/silent_s=//' |
    awk -v t="$timeout_s" '{ n++; s += $1; if ($1 > m) m = $1; over = $1 - t; if (over > mo) mo = over }
        END { if (!n) { print "  never (FAILED)"; exit 1 }
              printf "  %d freezes: mean %.3f s, max %.3f s (max %.3f s over the timeout; promise <= 1 s)\n", n, s / n, m, mo }'

echo "quiet: $duration s against a broker whose ACL drops every probe (sys_interval 10)"
end=$((SECONDS + duration))
samples=0
declare -A down=([acl-v311-qos1]=0 [acl-v5-qos0]=0)
while ((SECONDS < end)); do
    for b in acl-v311-qos1 acl-v5-qos0; do
        [ "$(metric mqtt_up "$b")" = 1 ] || down[$b]=$((down[$b] + 1))
    done
    samples=$((samples + 1))
    sleep 1
done
for b in acl-v311-qos1 acl-v5-qos0; do
    printf '  %-14s mqtt_up 1 in %d/%d scrapes; unresponsive disconnects %s; sessions %s; not_delivered runs %s, timeout runs %s\n' \
        "$b" $((samples - down[$b])) "$samples" \
        "$(metric mqtt_disconnects_total "$b" 'reason="unresponsive"')" \
        "$(metric mqtt_connects_total "$b" 'result="success"')" \
        "$(metric mqtt_probe_errors_total "$b" 'reason="not_delivered"')" \
        "$(metric mqtt_probe_errors_total "$b" 'reason="timeout"')"
done
