#!/usr/bin/env bash
# Round-trip overhead of mqtt-sentinel's probes against the physical floor, in ONE run:
#   floor  ../shared/bench/rtt_floor.py: raw socket, TCP_NODELAY, publish-to-self
#   ours   `mqtt-sentinel probe --count N --json`: the Paho client and timestamps the
#          scheduled probes use (send time before publish, receive time in the callback),
#          exact per-sample percentiles
#   svc    the running service's mqtt_probe_rtt_seconds histogram from scheduled probes,
#          quantiles interpolated within buckets (coarse: 50/100/250/500 us bounds)
# at QoS 0, 1 and 2, against two loopback brokers: set_tcp_nodelay false (mosquitto's
# default) and true.
#
#   scripts/bench-probe.sh [round-trips]     (default 500, bounded to 50..1000)
#
# Target (issue 3): p50 overhead (ours - floor) <= 50 us at QoS 0 and 1.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 50 || n > 1000)); then
    echo "round trips must be 50..1000" >&2
    exit 2
fi
floor_py=../shared/bench/rtt_floor.py
[ -f "$floor_py" ] || { echo "missing $floor_py (shared/ must sit beside the checkout)" >&2; exit 1; }

bash scripts/install-deps.sh
cargo build --release --locked --quiet
bin=$PWD/target/release/mqtt-sentinel
. scripts/lib.sh

declare -A port
for nd in false true; do
    port[$nd]=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nset_tcp_nodelay %s\n' \
        "${port[$nd]}" "$nd" >"$tmp/m-$nd.conf"
    mosquitto -c "$tmp/m-$nd.conf" >"$tmp/m-$nd.log" 2>&1 &
    pids+=($!)
    wait_port "${port[$nd]}" || { cat "$tmp/m-$nd.log"; exit 1; }
done

results=$tmp/results.jsonl
for nd in false true; do
    p=${port[$nd]}
    for q in 0 1 2; do
        python3 "$floor_py" --port "$p" --qos "$q" -n "$n" --json --label "nodelay=$nd" --max-seconds 60 |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"who":"floor","nodelay":sys.argv[1],"qos":int(sys.argv[2]),"p50":d["rtt"]["p50_us"],"p99":d["rtt"]["p99_us"]}))' "$nd" "$q" >>"$results"
        # the same floor at the service's pace (every 20 ms): threads wake from idle each time
        python3 "$floor_py" --port "$p" --qos "$q" -n 200 --interval 0.02 --json --max-seconds 60 |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"who":"paced","nodelay":sys.argv[1],"qos":int(sys.argv[2]),"p50":d["rtt"]["p50_us"],"p99":d["rtt"]["p99_us"]}))' "$nd" "$q" >>"$results"
        "$bin" probe "mqtt://127.0.0.1:$p" --qos "$q" --count "$n" --json |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"who":"ours","nodelay":sys.argv[1],"qos":int(sys.argv[2]),"p50":d["rtt_p50_seconds"]*1e6,"p99":d["rtt_p99_seconds"]*1e6,"state":d["state"]}))' "$nd" "$q" >>"$results" || true
    done
done

# Then, alone, the service: both brokers, every QoS, each probe every 20 ms (staggered),
# for the histogram columns. Bounded: n x 20 ms + 1 s.
hport=$(free_port)
{
    printf 'listen: "127.0.0.1:%s"\nlog: {level: warn}\nbrokers:\n' "$hport"
    for nd in false true; do
        printf '  - name: nodelay-%s\n    url: mqtt://127.0.0.1:%s\n    sys: {enabled: false}\n    probes:\n' "$nd" "${port[$nd]}"
        for q in 0 1 2; do printf '      - {qos: %s, interval: 20ms, timeout: 2s}\n' "$q"; done
    done
} >"$tmp/s.yaml"
"$bin" --config "$tmp/s.yaml" 2>"$tmp/s.log" &
pids+=($!)
wait_port "$hport" || { cat "$tmp/s.log"; exit 1; }
sleep "$(python3 -c "print($n * 0.02 + 1)")"
curl -fsS "http://127.0.0.1:$hport/metrics" >"$tmp/metrics.txt"

python3 - "$results" "$tmp/metrics.txt" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
# histogram_quantile over the service's buckets, as Prometheus computes it
buckets = collections.defaultdict(list)
for line in open(sys.argv[2]):
    if line.startswith("mqtt_probe_rtt_seconds_bucket{"):
        labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.index("}")].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        buckets[(labels["broker"], labels["qos"])].append((le, float(line.rsplit(" ", 1)[1])))
def hq(q, bs):
    bs = sorted(bs)
    total = bs[-1][1]
    if total == 0:
        return float("nan"), 0
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in bs:
        if c >= rank:
            if le == float("inf"):
                return prev_le * 1e6, total
            return (prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)) * 1e6, total
        prev_le, prev_c = le, c
    return float("nan"), total
by = {(r["who"], r["nodelay"], r["qos"]): r for r in rows}
print("floor and ours: exact percentiles of the requested round trips, one after another;")
print("svc: the running service's histogram (bucket-interpolated), each probe every 20 ms")
print("paced: the floor again with 20 ms between round trips, the reference for svc")
print(f"{'broker':18}{'QoS':>4}{'floor p50':>11}{'ours p50':>10}{'overhead':>10}{'floor p99':>11}{'ours p99':>10}{'paced p50':>11}{'svc p50~':>10}{'paced p99':>11}{'svc p99~':>10}{'svc n':>7}   (microseconds)")
ok = True
for nd in ("false", "true"):
    for q in (0, 1, 2):
        f, o, pc = by.get(("floor", nd, q)), by.get(("ours", nd, q)), by.get(("paced", nd, q), {"p50": float("nan"), "p99": float("nan")})
        if not f or not o:
            print(f"set_tcp_nodelay {nd:5} {q:>4}   missing measurement"); ok = False; continue
        s50, sn = hq(0.5, buckets.get((f"nodelay-{nd}", str(q)), [(float('inf'), 0)]))
        s99, _ = hq(0.99, buckets.get((f"nodelay-{nd}", str(q)), [(float('inf'), 0)]))
        over = o["p50"] - f["p50"]
        mark = ""
        if nd == "true" and q in (0, 1):
            mark = "  target <= 50: " + ("met" if over <= 50 else "MISSED")
            ok &= over <= 50
        print(f"set_tcp_nodelay {nd:5}{q:>2}{f['p50']:11.0f}{o['p50']:10.0f}{over:10.0f}{f['p99']:11.0f}{o['p99']:10.0f}{pc['p50']:11.0f}{s50:10.0f}{pc['p99']:11.0f}{s99:10.0f}{sn:7.0f}{mark}")
sys.exit(0 if ok else 1)
PY
