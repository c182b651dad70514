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
# Then the bridge probe's one-way time through a loopback bridge (edge -> central, both
# listeners set_tcp_nodelay true; the bridge's own outgoing socket has Nagle on, mosquitto
# does not set TCP_NODELAY on it), in the same run:
#   floor  scripts/bridge_floor.py: raw sockets, publish on edge, receive on central,
#          one message at a time
#   ours   `mqtt-sentinel probe --kind bridge --count N --json`, one message at a time
#   svc    the service's mqtt_bridge_delivery_seconds histogram (one bridge probe every
#          20 ms), next to the floor at that pace (paced); then QoS 0 and 1 probes together
#          on the one bridge (a QoS 0 forward delays the next one: the remote's delayed ACK)
#
#   scripts/bench-probe.sh [--roundtrip-only | --bridge-only] [messages]
#                                             (default 500, bounded to 50..1000)
#
# Target (issue 3): p50 overhead (ours - floor) <= 50 us at QoS 0 and 1 (round trips).
set -euo pipefail
cd "$(dirname "$0")/.."
do_rt=true
do_bridge=true
case "${1:-}" in
--roundtrip-only) do_bridge=false; shift ;;
--bridge-only) do_rt=false; shift ;;
-*) echo "usage: $0 [--roundtrip-only | --bridge-only] [messages]" >&2; exit 2 ;;
esac
n=${1:-500}
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 50 || n > 1000)); then
    echo "round trips must be 50..1000" >&2
    exit 2
fi
floor_py=../shared/bench/rtt_floor.py
[ -f "$floor_py" ] || { echo "missing $floor_py (shared/ must sit beside the checkout)" >&2; exit 1; }

rt_status=0
bridge_status=0

# A loopback mosquitto: start_mosquitto NAME NODELAY [extra conf lines]; its port in port[NAME].
declare -A port
start_mosquitto() {
    local name=$1 nodelay=$2
    shift 2
    port[$name]=$(free_port)
    {
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nset_tcp_nodelay %s\n' \
            "${port[$name]}" "$nodelay"
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$tmp/m-$name.conf"
    mosquitto -c "$tmp/m-$name.conf" >"$tmp/m-$name.log" 2>&1 &
    pids+=($!)
    wait_port "${port[$name]}" || { cat "$tmp/m-$name.log"; exit 1; }
}

# One line of results from a floor's JSON (stdin): floor_row WHO KEY QOS.
floor_row() {
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"who":sys.argv[1],"key":sys.argv[2],"qos":int(sys.argv[3]),"p50":d["rtt"]["p50_us"],"p99":d["rtt"]["p99_us"]}))' "$@"
}
# One line of results from `mqtt-sentinel probe --json` (stdin): ours_row KEY QOS.
ours_row() {
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"who":"ours","key":sys.argv[1],"qos":int(sys.argv[2]),"p50":d["rtt_p50_seconds"]*1e6,"p99":d["rtt_p99_seconds"]*1e6,"state":d["state"],"lost":d.get("lost",0),"duplicates":d.get("duplicates",0)}))' "$@"
}

# The service on config $2 (listening on port $1) for n x 20 ms + 1 s; its /metrics in $3.
service_metrics() {
    local sp
    "$bin" --config "$2" 2>"$2.log" &
    sp=$!
    pids+=("$sp")
    wait_port "$1" || { cat "$2.log"; exit 1; }
    sleep "$(python3 -c "print($n * 0.02 + 1)")"
    curl -fsS "http://127.0.0.1:$1/metrics" >"$3"
    kill "$sp"
    wait "$sp" 2>/dev/null || true
}

# What both tables share: their rows by (who, key, qos), and histogram_quantile over the
# service's buckets as Prometheus computes it.
write_tables_py() {
    cat >"$tmp/tables.py" <<'PY'
import collections, json

def rows(path):
    return {(r["who"], r["key"], r["qos"]): r for r in map(json.loads, open(path))}

def buckets(path, family, key):
    """{key(labels): [(le, count)]} of a histogram family in an exposition file."""
    out = collections.defaultdict(list)
    for line in open(path):
        if line.startswith(family + "_bucket{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.index("}")].split(","))
            labels = {k: v.strip('"') for k, v in labels.items()}
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            out[key(labels)].append((le, float(line.rsplit(" ", 1)[1])))
    return out

def hq(q, bs):
    """(quantile in microseconds, observations)."""
    bs = sorted(bs)
    total = bs[-1][1] if bs else 0
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

NAN = {"p50": float("nan"), "p99": float("nan")}
PY
}

roundtrip() {
    local nd p q hport results=$tmp/results.jsonl
    for nd in false true; do start_mosquitto "nodelay-$nd" "$nd"; done
    for nd in false true; do
        p=${port[nodelay-$nd]}
        for q in 0 1 2; do
            python3 "$floor_py" --port "$p" --qos "$q" -n "$n" --json --label "nodelay=$nd" --max-seconds 60 |
                floor_row floor "$nd" "$q" >>"$results"
            # the same floor at the service's pace (every 20 ms): threads wake from idle each time
            python3 "$floor_py" --port "$p" --qos "$q" -n 200 --interval 0.02 --json --max-seconds 60 |
                floor_row paced "$nd" "$q" >>"$results"
            "$bin" probe "mqtt://127.0.0.1:$p" --qos "$q" --count "$n" --json |
                ours_row "$nd" "$q" >>"$results" || true
        done
    done

    # Then, alone, the service: both brokers, every QoS, each probe every 20 ms (staggered),
    # for the histogram columns. Bounded: n x 20 ms + 1 s.
    hport=$(free_port)
    {
        printf 'listen: "127.0.0.1:%s"\nlog: {level: warn}\nbrokers:\n' "$hport"
        for nd in false true; do
            printf '  - name: nodelay-%s\n    url: mqtt://127.0.0.1:%s\n    sys: {enabled: false}\n    probes:\n' "$nd" "${port[nodelay-$nd]}"
            for q in 0 1 2; do printf '      - {qos: %s, interval: 20ms, timeout: 2s}\n' "$q"; done
        done
    } >"$tmp/s.yaml"
    service_metrics "$hport" "$tmp/s.yaml" "$tmp/metrics.txt"

    python3 - "$results" "$tmp/metrics.txt" "$tmp" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from tables import rows, buckets, hq, NAN
by = rows(sys.argv[1])
svc = buckets(sys.argv[2], "mqtt_probe_rtt_seconds", lambda l: (l["broker"], l["qos"]))
print("floor and ours: exact percentiles of the requested round trips, one after another;")
print("svc: the running service's histogram (bucket-interpolated), each probe every 20 ms")
print("paced: the floor again with 20 ms between round trips, the reference for svc")
print(f"{'broker':18}{'QoS':>4}{'floor p50':>11}{'ours p50':>10}{'overhead':>10}{'floor p99':>11}{'ours p99':>10}{'paced p50':>11}{'svc p50~':>10}{'paced p99':>11}{'svc p99~':>10}{'svc n':>7}   (microseconds)")
ok = True
for nd in ("false", "true"):
    for q in (0, 1, 2):
        f, o, pc = by.get(("floor", nd, q)), by.get(("ours", nd, q)), by.get(("paced", nd, q), NAN)
        if not f or not o:
            print(f"set_tcp_nodelay {nd:5} {q:>4}   missing measurement"); ok = False; continue
        s50, sn = hq(0.5, svc.get((f"nodelay-{nd}", str(q)), []))
        s99, _ = hq(0.99, svc.get((f"nodelay-{nd}", str(q)), []))
        over = o["p50"] - f["p50"]
        mark = ""
        if nd == "true" and q in (0, 1):
            mark = "  target <= 50: " + ("met" if over <= 50 else "MISSED")
            ok &= over <= 50
        print(f"set_tcp_nodelay {nd:5}{q:>2}{f['p50']:11.0f}{o['p50']:10.0f}{over:10.0f}{f['p99']:11.0f}{o['p99']:10.0f}{pc['p50']:11.0f}{s50:10.0f}{pc['p99']:11.0f}{s99:10.0f}{sn:7.0f}{mark}")
sys.exit(0 if ok else 1)
PY
}

# The bridge probe: edge -> central through a mosquitto bridge that maps edge/bench/# to
# site1/bench/#, per QoS the floor, ours and (paced) the floor every 20 ms, then the service.
bridge() {
    local central edge q t0 hport out=$tmp/bridge.jsonl
    start_mosquitto central true
    central=${port[central]}
    start_mosquitto edge true "connection bench" "address 127.0.0.1:$central" \
        "remote_clientid bench-bridge" "restart_timeout 1" "topic bench/# out 2 edge/ site1/"
    edge=${port[edge]}
    # the bridge is up when central has its client (bounded: 10 s)
    t0=$SECONDS
    until grep -q ' as bench-bridge' "$tmp/m-central.log"; do
        ((SECONDS - t0 < 10)) || { echo "the bridge did not connect" >&2; cat "$tmp/m-edge.log" >&2; exit 1; }
        sleep 0.05
    done
    for q in 0 1 2; do
        timeout 120 python3 scripts/bridge_floor.py --port-a "$edge" --port-b "$central" --qos "$q" -n "$n" \
            --topic edge/bench/floor --remote-topic site1/bench/floor --json --max-seconds 60 |
            floor_row floor bridge "$q" >>"$out"
        timeout 120 python3 scripts/bridge_floor.py --port-a "$edge" --port-b "$central" --qos "$q" -n 200 \
            --interval 0.02 --topic edge/bench/paced --remote-topic site1/bench/paced --json --max-seconds 60 |
            floor_row paced bridge "$q" >>"$out"
        timeout 120 "$bin" probe --kind bridge "mqtt://127.0.0.1:$edge" --to "mqtt://127.0.0.1:$central" \
            --topic edge/bench/ours --remote-topic site1/bench/ours --qos "$q" --count "$n" --json |
            ours_row bridge "$q" >>"$out" || true
    done
    # The service: one bridge probe every 20 ms per run (each QoS alone, as the paced floor),
    # then QoS 0 and 1 together on the same bridge: what a QoS 0 message does to the next one
    # on the bridge's link (Nagle on its outgoing socket, the remote's delayed ACK).
    local mix
    for mix in 0 1 2 "0 1"; do
        hport=$(free_port)
        {
            printf 'listen: "127.0.0.1:%s"\nlog: {level: warn}\nbrokers:\n' "$hport"
            printf '  - name: edge\n    url: mqtt://127.0.0.1:%s\n    sys: {enabled: false}\n    probes:\n' "$edge"
            for q in $mix; do
                printf '      - {kind: bridge, name: q%s, to: central, topic: edge/bench/svc%s, remote_topic: site1/bench/svc%s, qos: %s, interval: 20ms, timeout: 2s}\n' "$q" "$q" "$q" "$q"
            done
            printf '  - name: central\n    url: mqtt://127.0.0.1:%s\n    sys: {enabled: false}\n' "$central"
        } >"$tmp/sb.yaml"
        service_metrics "$hport" "$tmp/sb.yaml" "$tmp/bmetrics-${mix// /}.txt"
    done

    python3 - "$out" "$tmp" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import rows, buckets, hq, NAN
by = rows(sys.argv[1])
def svc(mix):
    return buckets(f"{sys.argv[2]}/bmetrics-{mix}.txt", "mqtt_bridge_delivery_seconds", lambda l: l["probe"])
print()
print("bridge edge -> central (one way; loopback; both listeners set_tcp_nodelay true):")
print("floor and ours: exact percentiles, one message at a time; svc: the service's")
print("mqtt_bridge_delivery_seconds (bucket-interpolated), one bridge probe every 20 ms; paced: the floor every 20 ms")
print(f"{'QoS':>4}{'floor p50':>11}{'ours p50':>10}{'overhead':>10}{'ratio':>7}{'floor p99':>11}{'ours p99':>10}{'overhead':>10}{'ratio':>7}{'paced p50':>11}{'svc p50~':>10}{'paced p99':>11}{'svc p99~':>10}{'svc n':>7}   (microseconds)")
ok = True
for q in (0, 1, 2):
    f, o, pc = by.get(("floor", "bridge", q)), by.get(("ours", "bridge", q)), by.get(("paced", "bridge", q), NAN)
    if not f or not o:
        print(f"{q:>4}   missing measurement"); ok = False; continue
    if o["state"] != "healthy" or o["lost"] or o["duplicates"]:
        print(f"{q:>4}   ours: {o}"); ok = False
    s50, sn = hq(0.5, svc(q).get(f"q{q}", []))
    s99, _ = hq(0.99, svc(q).get(f"q{q}", []))
    print(f"{q:>4}{f['p50']:11.0f}{o['p50']:10.0f}{o['p50'] - f['p50']:10.0f}{o['p50'] / f['p50']:7.2f}"
          f"{f['p99']:11.0f}{o['p99']:10.0f}{o['p99'] - f['p99']:10.0f}{o['p99'] / f['p99']:7.2f}"
          f"{pc['p50']:11.0f}{s50:10.0f}{pc['p99']:11.0f}{s99:10.0f}{sn:7.0f}")
both = svc("01")
for q in (0, 1):
    s50, sn = hq(0.5, both.get(f"q{q}", []))
    s99, _ = hq(0.99, both.get(f"q{q}", []))
    print(f"svc QoS {q} beside a QoS {1 - q} bridge probe on the same bridge: p50~ {s50:.0f} p99~ {s99:.0f} n {sn:.0f}")
sys.exit(0 if ok else 1)
PY
}

bash scripts/install-deps.sh
cargo build --release --locked --quiet
bin=$PWD/target/release/mqtt-sentinel
. scripts/lib.sh
write_tables_py
if $do_rt; then roundtrip || rt_status=$?; fi
if $do_bridge; then bridge || bridge_status=$?; fi
exit $((rt_status || bridge_status))
