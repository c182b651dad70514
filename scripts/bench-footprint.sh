#!/usr/bin/env bash
# Footprint of mqtt-sentinel collecting one broker's $SYS, against a floor measured in the
# same run: `mosquitto_sub -t '$SYS/#'` receiving the very same messages.
#
#   scripts/bench-footprint.sh [seconds]     (default 60, bounded to 1..600)
#
# Prints RSS (current and peak) and CPU seconds (user+system) of both, the ratios, and the
# targets from issue 2 (RSS <= 12 MiB, CPU <= 2x mosquitto_sub). mqtt-sentinel is scraped
# every 5 s as Prometheus scrapes (keep-alive, OpenMetrics), so its figures include serving
# /metrics; the floor does no such work. Loopback only; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs < 1 || secs > 600)); then
    echo "duration must be 1..600 seconds" >&2
    exit 2
fi

bash scripts/install-deps.sh
cargo build --release --locked --quiet
bin=target/release/mqtt-sentinel

. scripts/lib.sh

mport=$(free_port)
hport=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nsys_interval 1\npersistence false\nuser root\n' "$mport" >"$tmp/m.conf"
mosquitto -c "$tmp/m.conf" >"$tmp/m.log" 2>&1 &
pids+=($!)
wait_port "$mport" || { echo "mosquitto did not start" >&2; exit 1; }

printf 'listen: "127.0.0.1:%s"\nbrokers:\n  - name: bench\n    url: mqtt://127.0.0.1:%s\n' "$hport" "$mport" >"$tmp/s.yaml"
"$bin" --config "$tmp/s.yaml" 2>"$tmp/s.log" &
spid=$!
pids+=("$spid")
mosquitto_sub -h 127.0.0.1 -p "$mport" -t '$SYS/#' >/dev/null &
fpid=$!
pids+=("$fpid")
wait_port "$hport" || { cat "$tmp/s.log"; exit 1; }

# CPU time in seconds from the scheduler's nanosecond counters, summed over every thread
# (Paho runs its own); clock ticks (10 ms) are far too coarse for processes this quiet.
cpu() { cat /proc/"$1"/task/*/schedstat | awk '{ns += $1} END {printf "%.6f", ns / 1e9}'; }
mem() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }

threads() { for t in /proc/"$1"/task/*; do printf '%s %s\n' "$(tr ' ' _ <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")"; done | sort; }
threads "$spid" >"$tmp/t0"
c0s=$(cpu "$spid"); c0f=$(cpu "$fpid")
# Scrape like Prometheus 2.42: one keep-alive connection, its Accept header, every 5 s.
scrapes=$(python3 - "$hport" "$secs" <<'PY'
import http.client, sys, time
port, secs = int(sys.argv[1]), int(sys.argv[2])
accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
end, n = time.monotonic() + secs, 0
while time.monotonic() + 5 <= end:
    time.sleep(5)
    conn.request("GET", "/metrics", headers={"Accept": accept})
    r = conn.getresponse(); r.read()
    n += r.status == 200
time.sleep(max(0.0, end - time.monotonic()))
print(n)
PY
)
c1s=$(cpu "$spid"); c1f=$(cpu "$fpid")
threads "$spid" >"$tmp/t1"
samples=$(curl -fsS "http://127.0.0.1:$hport/metrics" | grep -c '^mqtt_broker_')

python3 - "$secs" "$c0s" "$c1s" "$c0f" "$c1f" \
    "$(mem "$spid" VmRSS)" "$(mem "$spid" VmHWM)" "$(mem "$fpid" VmRSS)" "$(mem "$fpid" VmHWM)" \
    "$scrapes" "$samples" <<'PY' && rc=0 || rc=$?
import sys
secs, c0s, c1s, c0f, c1f, rs, hs, rf, hf, scrapes, samples = sys.argv[1:]
cs, cf = float(c1s) - float(c0s), float(c1f) - float(c0f)
rs, hs, rf, hf = (int(x) / 1024 for x in (rs, hs, rf, hf))
print(f"window {secs} s, one mosquitto with sys_interval 1, {scrapes} scrapes of mqtt-sentinel, {samples} mqtt_broker_* samples")
print(f"{'':16}{'RSS MiB':>9}{'peak MiB':>10}{'CPU ms':>9}")
print(f"{'mqtt-sentinel':16}{rs:9.1f}{hs:10.1f}{cs * 1000:9.1f}")
print(f"{'mosquitto_sub':16}{rf:9.1f}{hf:10.1f}{cf * 1000:9.1f}")
ratio = cs / cf if cf > 0 else float('inf')
print(f"ratios: RSS {rs / rf:.1f}x, CPU {ratio:.2f}x of the floor")
ok_rss, ok_cpu = hs <= 12, ratio <= 2
print(f"target RSS <= 12 MiB (peak): {'met' if ok_rss else 'MISSED'}; CPU <= 2x mosquitto_sub: {'met' if ok_cpu else 'MISSED'}")
sys.exit(0 if ok_rss and ok_cpu else 1)
PY
echo "mqtt-sentinel CPU by thread (ms); MQTTAsync_* are the Paho C library's own threads:"
join "$tmp/t0" "$tmp/t1" 2>/dev/null | awk '{printf "  %-18s %7.1f\n", $1, ($3 - $2) / 1e6}'
exit $rc
