#!/usr/bin/env bash
# Footprint of mqtt-sentinel collecting one broker's $SYS, against a floor measured in the
# same run: `mosquitto_sub -t '$SYS/#'` receiving the very same messages.
#
#   scripts/bench-footprint.sh [seconds]     (default 60, bounded to 1..600)
#
# Prints RSS (current and peak) and CPU seconds (user+system) of both, the ratios, and the
# targets from issue 2 (RSS <= 12 MiB, CPU <= 2x mosquitto_sub). mqtt-sentinel is scraped
# every 5 s as Prometheus would, so its figures include encoding /metrics; the floor does no
# such work. Loopback only; everything started here is stopped on exit.
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

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 200); do port_open "$1" && return 0; sleep 0.05; done; return 1; }

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

tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.3f", ($14+$15)/t}' "/proc/$1/stat"; }
mem() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }

c0s=$(cpu "$spid"); c0f=$(cpu "$fpid")
end=$((SECONDS + secs))
scrapes=0
while ((SECONDS < end)); do
    sleep 5
    curl -fsS "http://127.0.0.1:$hport/metrics" >/dev/null && scrapes=$((scrapes + 1))
done
c1s=$(cpu "$spid"); c1f=$(cpu "$fpid")
samples=$(curl -fsS "http://127.0.0.1:$hport/metrics" | grep -c '^mqtt_broker_')

python3 - "$secs" "$c0s" "$c1s" "$c0f" "$c1f" \
    "$(mem "$spid" VmRSS)" "$(mem "$spid" VmHWM)" "$(mem "$fpid" VmRSS)" "$(mem "$fpid" VmHWM)" \
    "$scrapes" "$samples" <<'PY'
import sys
secs, c0s, c1s, c0f, c1f, rs, hs, rf, hf, scrapes, samples = sys.argv[1:]
cs, cf = float(c1s) - float(c0s), float(c1f) - float(c0f)
rs, hs, rf, hf = (int(x) / 1024 for x in (rs, hs, rf, hf))
print(f"window {secs} s, one mosquitto with sys_interval 1, {scrapes} scrapes of mqtt-sentinel, {samples} mqtt_broker_* samples")
print(f"{'':16}{'RSS MiB':>9}{'peak MiB':>10}{'CPU s':>8}")
print(f"{'mqtt-sentinel':16}{rs:9.1f}{hs:10.1f}{cs:8.2f}")
print(f"{'mosquitto_sub':16}{rf:9.1f}{hf:10.1f}{cf:8.2f}")
ratio = cs / cf if cf > 0 else float('inf')
print(f"ratios: RSS {rs / rf:.1f}x, CPU {ratio:.2f}x of the floor")
ok_rss, ok_cpu = hs <= 12, ratio <= 2
print(f"target RSS <= 12 MiB (peak): {'met' if ok_rss else 'MISSED'}; CPU <= 2x mosquitto_sub: {'met' if ok_cpu else 'MISSED'}")
sys.exit(0 if ok_rss and ok_cpu else 1)
PY
