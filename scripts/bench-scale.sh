#!/usr/bin/env bash
# What one mqtt-sentinel process costs per watched broker: N = 1, 10, 100, 1000 broker entries
# (default; `BENCH_SCALE_NS="1 10 100"` to change) in one run, against a few loopback
# mosquittos, each with the default configuration a user gets (one QoS 1 round-trip probe
# every 10 s per broker, $SYS/#, the embedded alert rules evaluated every 15 s).
#
#   scripts/bench-scale.sh [seconds]     (measurement window per N; default 30, 5..300)
#
# Several broker entries point at the same mosquitto, each with its own client id (the
# `client_id` field), as several brokers would: every entry is one MQTT session with its own
# $SYS subscription, probes and series. The mosquittos publish $SYS every `SYS_INTERVAL`
# seconds (default 10, mosquitto's own default). For each N the script starts mqtt-sentinel,
# waits (bounded: 300 s) until every broker reports `mqtt_up 1` with $SYS values, lets it
# settle 5 s, then measures over the window:
#   - CPU: user+system seconds of all threads (scheduler ns counters) per second of wall time;
#   - RSS (VmRSS at the end, and the peak VmHWM), threads and open FDs at the end;
#   - /metrics: the median and the worst of the scrapes taken every 2 s (Prometheus'
#     OpenMetrics Accept header, a new connection each), and the body size.
# Each figure is printed with its ratio to N = 1, and the cost per broker added as
# (value at the largest N where every broker came up − value at N = 1) / (that N − 1).
# Loopback only; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs < 5 || secs > 300)); then
    echo "window must be 5..300 seconds" >&2
    exit 2
fi
ns=${BENCH_SCALE_NS:-"1 10 100 1000"}
sys_interval=${SYS_INTERVAL:-10}
mosquittos=${BENCH_SCALE_MOSQUITTOS:-4}

bash scripts/install-deps.sh
cargo build --release --locked --quiet
bin=target/release/mqtt-sentinel

. scripts/lib.sh

# Every broker entry is one TCP connection to a mosquitto (plus short-lived probe clients);
# the largest N must fit into each side's file-descriptor limit.
max_n=0
for n in $ns; do ((n > max_n)) && max_n=$n; done
need=$((max_n + 256))
if (($(ulimit -n) < need)); then
    ulimit -n "$need" 2>/dev/null || {
        echo "ulimit -n is $(ulimit -n); N = $max_n needs at least $need open files" >&2
        exit 1
    }
fi

mports=()
for i in $(seq "$mosquittos"); do
    p=$(free_port)
    # max_connections -1: no limit but the process' file descriptors (checked above).
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nsys_interval %s\npersistence false\nmax_connections -1\nuser root\nset_tcp_nodelay true\n' \
        "$p" "$sys_interval" >"$tmp/m$i.conf"
    mosquitto -c "$tmp/m$i.conf" >"$tmp/m$i.log" 2>&1 &
    pids+=($!)
    mports+=("$p")
done
for p in "${mports[@]}"; do wait_port "$p" || { echo "mosquitto on $p did not start" >&2; exit 1; }; done

cpu() { cat /proc/"$1"/task/*/schedstat | awk '{ns += $1} END {printf "%.6f", ns / 1e9}'; }
mem() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }

results="$tmp/results"
: >"$results"
for n in $ns; do
    hport=$(free_port)
    conf="$tmp/s$n.yaml"
    {
        printf 'listen: "127.0.0.1:%s"\nlog: { level: warn }\nbrokers:\n' "$hport"
        for i in $(seq "$n"); do
            mp=${mports[$(((i - 1) % mosquittos))]}
            printf '  - { name: b%04d, url: "mqtt://127.0.0.1:%s", client_id: bench-scale-%d-%d }\n' "$i" "$mp" "$n" "$i"
        done
    } >"$conf"
    "$bin" --config "$conf" 2>"$tmp/s$n.log" &
    spid=$!
    pids+=("$spid")
    wait_port "$hport" || { cat "$tmp/s$n.log" >&2; exit 1; }
    # Bounded wait until every broker is up with $SYS values (a deadline, not a timing). A
    # process that does not get there is still measured, and the table says how many were up.
    upn=$(python3 - "$hport" "$n" <<'PY'
import re, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 300
up = sys_ = 0
while time.monotonic() < deadline:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
    except OSError as e:
        print(f"N={n}: /metrics: {e}", file=sys.stderr)
        continue
    up = len(re.findall(r'^mqtt_up\{broker="[^"]+"\} 1(\.0)?$', body, re.M))
    sys_ = len(set(re.findall(r'^mqtt_broker_uptime_seconds\{broker="([^"]+)"', body, re.M)))
    if up == n and sys_ == n:
        break
    time.sleep(1)
else:
    print(f"N={n}: after 300 s only {up} up, {sys_} with $SYS", file=sys.stderr)
print(min(up, sys_))
PY
)
    sleep 5 # settle: connect bursts and first probes are not the steady state
    c0=$(cpu "$spid")
    t0=$(date +%s.%N)
    # Scrape every 2 s over the window, as Prometheus would with a new connection each time.
    scrape=$(python3 - "$hport" "$secs" <<'PY'
import http.client, statistics, sys, time
port, secs = int(sys.argv[1]), int(sys.argv[2])
accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
end, lat, size = time.monotonic() + secs, [], 0
while time.monotonic() + 2 <= end:
    time.sleep(2)
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/metrics", headers={"Accept": accept})
        body = c.getresponse().read()
        size = len(body)
        c.close()
    except OSError:
        pass  # counted as the time it took to fail
    lat.append(time.monotonic() - t)
time.sleep(max(0.0, end - time.monotonic()))
print(f"{statistics.median(lat) * 1000:.2f} {max(lat) * 1000:.2f} {size}")
PY
)
    c1=$(cpu "$spid")
    t1=$(date +%s.%N)
    threads=$(ls /proc/"$spid"/task | wc -l)
    fds=$(ls /proc/"$spid"/fd | wc -l)
    echo "$n $upn $c0 $c1 $t0 $t1 $(mem "$spid" VmRSS) $(mem "$spid" VmHWM) $threads $fds $scrape" >>"$results"
    # SIGTERM, and SIGKILL if it has not exited 10 s later (a process stuck in Paho does not).
    kill "$spid"
    for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
done

python3 - "$results" "$secs" "$mosquittos" "$sys_interval" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    n, upn, c0, c1, t0, t1, rss, hwm, thr, fds, med, worst, size = line.split()
    rows.append(dict(n=int(n), up=int(upn), cpu=(float(c1) - float(c0)) / (float(t1) - float(t0)),
                     rss=int(rss) / 1024, hwm=int(hwm) / 1024, thr=int(thr), fds=int(fds),
                     med=float(med), worst=float(worst), size=int(size) / 1024))
secs, mq, si = sys.argv[2:]
print(f"window {secs} s per N, {mq} loopback mosquittos (sys_interval {si}), default probes and rules")
cols = [("cpu", "CPU s/s", "{:.4f}"), ("rss", "RSS MiB", "{:.1f}"), ("hwm", "peak MiB", "{:.1f}"),
        ("thr", "threads", "{}"), ("fds", "FDs", "{}"), ("med", "/metrics ms", "{:.1f}"),
        ("worst", "worst ms", "{:.1f}"), ("size", "body KiB", "{:.0f}")]
base = rows[0]
print("| N | up | " + " | ".join(h for _, h, _ in cols) + " |")
print("|---:|---:|" + "---:|" * len(cols))
for r in rows:
    cells = []
    for k, _, f in cols:
        ratio = r[k] / base[k] if base[k] else float("inf")
        cells.append(f.format(r[k]) + ("" if r is base else f" ({ratio:.1f}×)"))
    print(f"| {r['n']} | {r['up']} | " + " | ".join(cells) + " |")
# The cost per broker comes from the largest N at which every broker came up.
top = [r for r in rows if r["up"] == r["n"]][-1]
for r in rows:
    if r["up"] < r["n"]:
        print(f"N={r['n']}: only {r['up']} brokers up: its figures are of a process that did not start")
if top["n"] > base["n"]:
    d = top["n"] - base["n"]
    print(f"per broker added (N={base['n']}→{top['n']}): "
          f"CPU {(top['cpu'] - base['cpu']) / d * 1000:.3f} ms/s, "
          f"RSS {(top['rss'] - base['rss']) / d * 1024:.0f} KiB, "
          f"threads {(top['thr'] - base['thr']) / d:.3f}, FDs {(top['fds'] - base['fds']) / d:.2f}, "
          f"/metrics {(top['med'] - base['med']) / d * 1000:.1f} µs, body {(top['size'] - base['size']) / d:.1f} KiB")
PY
