#!/usr/bin/env bash
# Soak: mqtt-sentinel against a mosquitto that is killed and restarted every 5 s, a webhook
# receiver that flaps (up 7 s, down 7 s), probes of every kind at 1/s and an alert that fires
# and resolves with the broker. Prints RSS, open FDs and threads every 30 s and fails if any
# of them grew after the first minute by more than a small bound (a leak, not noise).
#
#   scripts/soak.sh                 # 10 minutes
#   SOAK_SECONDS=120 scripts/soak.sh
#
# Everything runs on loopback and stops by itself; Ctrl-C stops it early.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${SOAK_SECONDS:-600}
RSS_BOUND_KIB=${SOAK_RSS_BOUND_KIB:-8192}
FD_BOUND=${SOAK_FD_BOUND:-8}
THREAD_BOUND=${SOAK_THREAD_BOUND:-4}

bash scripts/install-deps.sh
cargo build --release --quiet
BIN=target/release/mqtt-sentinel

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}" ${broker_pid:-} ${sink_pid:-}; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQTT_PORT=$(free_port)
HTTP_PORT=$(free_port)
SINK_PORT=$(free_port)

cat >"$work/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
sys_interval 1
set_tcp_nodelay true
user root
EOF
cat >"$work/sink.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
cat >"$work/rules.yml" <<'EOF'
groups:
  - name: soak
    rules:
      - alert: SoakBrokerDown
        expr: mqtt_up == 0
      - alert: SoakProbeFailing
        expr: mqtt_probe_success == 0
EOF
cat >"$work/sentinel.yaml" <<EOF
listen: 127.0.0.1:$HTTP_PORT
brokers:
  - name: soak
    url: mqtt://127.0.0.1:$MQTT_PORT
    keep_alive: 5s
    connect_timeout: 2s
    reconnect: { initial_backoff: 100ms, max_backoff: 2s }
    probes:
      - { kind: roundtrip, qos: 0, interval: 1s, timeout: 2s }
      - { kind: roundtrip, qos: 1, interval: 1s, timeout: 2s }
      - { kind: roundtrip, qos: 2, interval: 1s, timeout: 2s }
      - { kind: connect, interval: 1s, timeout: 2s }
      - { kind: retained, interval: 1s, timeout: 2s }
rules: { files: [$work/rules.yml], evaluation_interval: 1s }
notify:
  repeat_interval: 10s
  receivers:
    - { name: sink, type: webhook, url: "http://127.0.0.1:$SINK_PORT/hook", timeout: 1s, max_attempts: 3 }
EOF

mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 & broker_pid=$!
python3 "$work/sink.py" "$SINK_PORT" & sink_pid=$!
"$BIN" --config "$work/sentinel.yaml" 2>"$work/sentinel.log" & sentinel=$!
pids+=("$sentinel")

sample() {
    local rss fds threads
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$sentinel/status")
    threads=$(awk '/^Threads/ {print $2}' "/proc/$sentinel/status")
    fds=$(ls "/proc/$sentinel/fd" | wc -l)
    echo "$rss $fds $threads"
}

start=$(date +%s)
next_sample=$((start + 30))
next_kill=$((start + 5))
next_flap=$((start + 7))
base=""
worst_rss=0 worst_fds=0 worst_threads=0
printf '%6s %10s %5s %8s\n' "t(s)" "RSS(KiB)" "FDs" "threads"
while :; do
    now=$(date +%s)
    elapsed=$((now - start))
    ((elapsed >= SECONDS_TOTAL)) && break
    kill -0 "$sentinel" 2>/dev/null || { echo "mqtt-sentinel died"; tail -20 "$work/sentinel.log"; exit 1; }
    if ((now >= next_kill)); then
        kill -9 "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        sleep 1 # the broker stays down for a second: that is the fault being injected
        mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 & broker_pid=$!
        next_kill=$((now + 5))
    fi
    if ((now >= next_flap)); then
        if [ -n "${sink_pid:-}" ]; then
            kill -9 "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
        else
            python3 "$work/sink.py" "$SINK_PORT" & sink_pid=$!
        fi
        next_flap=$((now + 7))
    fi
    if ((now >= next_sample)); then
        read -r rss fds threads <<<"$(sample)"
        printf '%6d %10d %5d %8d\n' "$elapsed" "$rss" "$fds" "$threads"
        if ((elapsed >= 60)); then
            if [ -z "$base" ]; then
                base="$rss $fds $threads"
            else
                read -r b_rss b_fds b_threads <<<"$base"
                ((rss - b_rss > worst_rss)) && worst_rss=$((rss - b_rss))
                ((fds - b_fds > worst_fds)) && worst_fds=$((fds - b_fds))
                ((threads - b_threads > worst_threads)) && worst_threads=$((threads - b_threads))
            fi
        fi
        next_sample=$((now + 30))
    fi
    sleep 0.2 # the loop's tick; every action above is scheduled by wall clock
done

metrics=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics")
echo "--- after ${SECONDS_TOTAL}s"
grep -E '^mqtt_connects_total|^mqtt_sentinel_notifications_total|^mqtt_probe_rtt_seconds_count' <<<"$metrics" || true
echo "growth after the first minute: RSS +${worst_rss} KiB (bound ${RSS_BOUND_KIB}), FDs +${worst_fds} (bound ${FD_BOUND}), threads +${worst_threads} (bound ${THREAD_BOUND})"
if ((worst_rss > RSS_BOUND_KIB || worst_fds > FD_BOUND || worst_threads > THREAD_BOUND)); then
    echo "FAIL: something grows"
    exit 1
fi
echo "OK"
