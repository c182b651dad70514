#!/usr/bin/env python3
"""Generate dashboards/*.json (Grafana, portable form) from the panel lists below.

Portable: a `datasource` variable and every panel/target on `${datasource}` (no __inputs),
`job`/`instance`/`broker` variables, `$__rate_interval` in every rate, units, titles,
descriptions, stable uids, editable false, schemaVersion 39. Tests in tests/it/dashboards.rs
lint the output and run every query through a real Prometheus.

    python3 scripts/gen-dashboards.py        # rewrites dashboards/*.json
    python3 scripts/gen-dashboards.py DIR    # writes them to DIR instead (tests compare)
"""
import json
import os
import sys

SEL = 'job=~"$job",instance=~"$instance",broker=~"$broker"'
SELF = 'job=~"$job",instance=~"$instance"'
DS = {"type": "prometheus", "uid": "${datasource}"}


def variables(with_broker=True):
    v = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS,
         "query": {"query": "label_values(mqtt_up, job)", "refId": "job"},
         "definition": "label_values(mqtt_up, job)", "refresh": 2, "includeAll": True,
         "multi": True, "allValue": ".+", "current": {}, "hide": 0},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
         "query": {"query": 'label_values(mqtt_up{job=~"$job"}, instance)', "refId": "instance"},
         "definition": 'label_values(mqtt_up{job=~"$job"}, instance)', "refresh": 2,
         "includeAll": True, "multi": True, "allValue": ".+", "current": {}, "hide": 0},
    ]
    if with_broker:
        v.append({"name": "broker", "label": "Broker", "type": "query", "datasource": DS,
                  "query": {"query": 'label_values(mqtt_up{job=~"$job",instance=~"$instance"}, broker)',
                            "refId": "broker"},
                  "definition": 'label_values(mqtt_up{job=~"$job",instance=~"$instance"}, broker)',
                  "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+", "current": {},
                  "hide": 0})
    return v


def panel(pid, kind, title, desc, unit, exprs, x, y, w=12, h=8, legend="{{broker}}"):
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = e if isinstance(e, tuple) else (e, legend)
        t = {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": leg}
        if kind == "heatmap":
            t["format"] = "heatmap"
        targets.append(t)
    p = {"id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}
    if kind == "heatmap":
        p["options"] = {"calculate": False, "yAxis": {"unit": unit}}
    return p


def dashboard(uid, title, desc, panels, with_broker=True):
    return {"uid": uid, "title": title, "description": desc, "editable": False,
            "schemaVersion": 39, "version": 1, "tags": ["mqtt", "mqtt-sentinel"],
            "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "",
            "templating": {"list": variables(with_broker)}, "annotations": {"list": []},
            "links": [], "panels": panels}


def grid(specs, width=12, height=8):
    out, x, y = [], 0, 0
    for i, s in enumerate(specs):
        w = s.get("w", width)
        if x + w > 24:
            x, y = 0, y + height
        out.append(panel(i + 1, s["type"], s["title"], s["desc"], s["unit"], s["exprs"], x, y, w,
                         height, s.get("legend", "{{broker}}")))
        x += w
    return out


R = "[$__rate_interval]"
overview = [
    dict(type="stat", title="Session up", unit="bool_yes_no", w=6,
         desc="1 while mqtt-sentinel has an MQTT session to the broker (mqtt_up).",
         exprs=[f"mqtt_up{{{SEL}}}"]),
    dict(type="stat", title="Uptime", unit="s", w=6,
         desc="Seconds since the broker started, from $SYS.",
         exprs=[f"mqtt_broker_uptime_seconds{{{SEL}}}"]),
    dict(type="stat", title="Version", unit="none", w=6, legend="{{broker}} {{implementation}} {{version}}",
         desc="Broker implementation and version announced in $SYS.",
         exprs=[f"mqtt_broker_info{{{SEL}}}"]),
    dict(type="stat", title="Capacity used", unit="percentunit", w=6,
         desc="Connected clients as a share of capacity.max_connections.",
         exprs=[f"mqtt_broker_clients_connected{{{SEL}}} / on (job, instance, broker) mqtt_sentinel_capacity_max_connections{{{SEL}}}"]),
    dict(type="timeseries", title="Clients", unit="short",
         desc="Connected clients, and disconnected ones whose session the broker keeps.",
         exprs=[(f"mqtt_broker_clients_connected{{{SEL}}}", "{{broker}} connected"),
                (f"mqtt_broker_clients_disconnected{{{SEL}}}", "{{broker}} disconnected")]),
    dict(type="timeseries", title="Subscriptions", unit="short",
         desc="Subscriptions and shared subscriptions held by the broker.",
         exprs=[(f"mqtt_broker_subscriptions{{{SEL}}}", "{{broker}}"),
                (f"mqtt_broker_shared_subscriptions{{{SEL}}}", "{{broker}} shared")]),
    dict(type="timeseries", title="Packets", unit="pps",
         desc="MQTT packets of any type received and sent by the broker.",
         exprs=[(f"rate(mqtt_broker_messages_received_total{{{SEL}}}{R})", "{{broker}} in"),
                (f"rate(mqtt_broker_messages_sent_total{{{SEL}}}{R})", "{{broker}} out")]),
    dict(type="timeseries", title="PUBLISH rate", unit="pps",
         desc="PUBLISH messages received, sent and dropped by the broker.",
         exprs=[(f"rate(mqtt_broker_publish_messages_received_total{{{SEL}}}{R})", "{{broker}} in"),
                (f"rate(mqtt_broker_publish_messages_sent_total{{{SEL}}}{R})", "{{broker}} out"),
                (f"rate(mqtt_broker_publish_messages_dropped_total{{{SEL}}}{R})", "{{broker}} dropped")]),
    dict(type="timeseries", title="Traffic", unit="Bps",
         desc="Bytes received and sent by the broker (all packets).",
         exprs=[(f"rate(mqtt_broker_bytes_received_total{{{SEL}}}{R})", "{{broker}} in"),
                (f"rate(mqtt_broker_bytes_sent_total{{{SEL}}}{R})", "{{broker}} out")]),
    dict(type="timeseries", title="Drop ratio", unit="percentunit",
         desc="Share of received PUBLISH messages the broker dropped (queue limits, offline clients).",
         exprs=[f"rate(mqtt_broker_publish_messages_dropped_total{{{SEL}}}{R}) / rate(mqtt_broker_publish_messages_received_total{{{SEL}}}{R})"]),
    dict(type="timeseries", title="Retained and stored messages", unit="short",
         desc="Retained messages, and all messages in the broker's store (retained plus queued).",
         exprs=[(f"mqtt_broker_retained_messages{{{SEL}}}", "{{broker}} retained"),
                (f"mqtt_broker_stored_messages{{{SEL}}}", "{{broker}} stored")]),
    dict(type="timeseries", title="Heap", unit="bytes",
         desc="Broker heap in use and its peak (mosquitto built with memory tracking).",
         exprs=[(f"mqtt_broker_heap_bytes{{{SEL}}}", "{{broker}} current"),
                (f"mqtt_broker_heap_maximum_bytes{{{SEL}}}", "{{broker}} peak")]),
    dict(type="timeseries", title="Outbound backlog", unit="short",
         desc="Packets the broker has queued for sending and not yet written to the network (mosquitto 2.1 and later): a backlog that grows means slow or stuck subscribers.",
         exprs=[(f"mqtt_broker_outgoing_packets{{{SEL}}}", "{{broker}}")]),
    dict(type="timeseries", title="Bridges", unit="bool_yes_no", legend="{{broker}} {{bridge}}",
         desc="1 while the broker reports the bridge connected. Empty when no bridge is configured.",
         exprs=[f"mqtt_broker_bridge_up{{{SEL}}}"]),
    dict(type="timeseries", title="Connections per second (broker's 1 min average)", unit="cps",
         desc="The broker's own moving average of new connections, converted to per second.",
         exprs=[f'mqtt_broker_load_connections_per_second{{{SEL},window="1m"}}']),
]
probes = [
    dict(type="stat", title="Probe success", unit="bool_yes_no", w=8, legend="{{broker}} {{probe}}",
         desc="1 if the probe's last run succeeded in time.",
         exprs=[f"mqtt_probe_success{{{SEL}}}"]),
    dict(type="stat", title="Health", unit="none", w=8, legend="{{broker}} {{state}}",
         desc="The broker's health state from the probes (state set; the shown state is 1).",
         exprs=[f"mqtt_probe_health{{{SEL}}} == 1"]),
    dict(type="stat", title="Loss (1 h)", unit="percentunit", w=8, legend="{{broker}} {{probe}}",
         desc="Round-trip probes lost over the last hour, as a share of those sent.",
         exprs=[f"sum by (broker, probe) (increase(mqtt_probe_lost_total{{{SEL}}}[1h])) / sum by (broker, probe) (increase(mqtt_probe_sent_total{{{SEL}}}[1h]))"]),
    dict(type="heatmap", title="Round trip (heatmap)", unit="s", legend="{{le}}",
         desc="Distribution of publish-to-self round trips (all QoS).",
         exprs=[f"sum by (le) (rate(mqtt_probe_rtt_seconds_bucket{{{SEL}}}{R}))"]),
    dict(type="timeseries", title="Round trip p50 / p99", unit="s", legend="{{broker}} QoS {{qos}}",
         desc="Median and 99th percentile publish-to-self round trip by QoS.",
         exprs=[(f"histogram_quantile(0.5, sum by (broker, qos, le) (rate(mqtt_probe_rtt_seconds_bucket{{{SEL}}}{R})))", "{{broker}} QoS {{qos}} p50"),
                (f"histogram_quantile(0.99, sum by (broker, qos, le) (rate(mqtt_probe_rtt_seconds_bucket{{{SEL}}}{R})))", "{{broker}} QoS {{qos}} p99")]),
    dict(type="timeseries", title="Acknowledgement p99", unit="s", legend="{{broker}} QoS {{qos}}",
         desc="99th percentile publish to PUBACK (QoS 1) / PUBCOMP (QoS 2).",
         exprs=[f"histogram_quantile(0.99, sum by (broker, qos, le) (rate(mqtt_probe_ack_seconds_bucket{{{SEL}}}{R})))"]),
    dict(type="timeseries", title="Lost, duplicate, out-of-order", unit="pps", legend="{{broker}} {{probe}}",
         desc="Rates of round-trip probes lost, received twice, or received after a newer one.",
         exprs=[(f"rate(mqtt_probe_lost_total{{{SEL}}}{R})", "{{broker}} {{probe}} lost"),
                (f"rate(mqtt_probe_duplicates_total{{{SEL}}}{R})", "{{broker}} {{probe}} duplicate"),
                (f"rate(mqtt_probe_out_of_order_total{{{SEL}}}{R})", "{{broker}} {{probe}} out of order")]),
    dict(type="timeseries", title="Connect latency p50 / p99", unit="s",
         desc="Connect probe: TCP (+TLS) + CONNECT/CONNACK of a fresh client.",
         exprs=[(f"histogram_quantile(0.5, sum by (broker, le) (rate(mqtt_connect_duration_seconds_bucket{{{SEL}}}{R})))", "{{broker}} p50"),
                (f"histogram_quantile(0.99, sum by (broker, le) (rate(mqtt_connect_duration_seconds_bucket{{{SEL}}}{R})))", "{{broker}} p99")]),
    dict(type="timeseries", title="Probe failures by reason", unit="short", legend="{{broker}} {{probe}} {{reason}}",
         desc="Failed probe runs by reason (v5 reason code, not_delivered, timeout, refused, dns, tls_certificate, tls_handshake, websocket_http_<status>, connection_closed, mismatch, session_not_present, duplicate, unexpected_will). Empty while nothing fails.",
         exprs=[f"sum by (broker, probe, reason) (increase(mqtt_probe_errors_total{{{SEL}}}{R}))"]),
    dict(type="timeseries", title="Session connects by result", unit="short", legend="{{broker}} {{result}}",
         desc="Connection attempts of the watching session by result.",
         exprs=[f"sum by (broker, result) (increase(mqtt_connects_total{{{SEL}}}{R}))"]),
    dict(type="timeseries", title="Will delivery p50 / p99", unit="s",
         desc="Will probe: from closing a client's socket without DISCONNECT to its will arriving, will_delay included: how long presence logic waits to learn a device is gone. Whether wills and persistent sessions work at all: Probe success and Probe failures by reason (session_not_present, duplicate, unexpected_will).",
         exprs=[(f"histogram_quantile(0.5, sum by (broker, probe, le) (rate(mqtt_will_delivery_seconds_bucket{{{SEL}}}{R})))", "{{broker}} {{probe}} p50"),
                (f"histogram_quantile(0.99, sum by (broker, probe, le) (rate(mqtt_will_delivery_seconds_bucket{{{SEL}}}{R})))", "{{broker}} {{probe}} p99")]),
    dict(type="timeseries", title="Bridge probes", unit="s", legend="{{broker}} to {{remote}} {{probe}}",
         desc="Bridge probes: one-way time from a publish on broker to its arrival on remote (p50, p99), and failed runs by reason (not_delivered: the bridge carried nothing, whatever mqtt_broker_bridge_up says; remote_not_connected: our session to remote was down). Empty without bridge probes.",
         exprs=[(f"histogram_quantile(0.5, sum by (broker, remote, probe, le) (rate(mqtt_bridge_delivery_seconds_bucket{{{SEL}}}{R})))", "{{broker}} to {{remote}} {{probe}} p50"),
                (f"histogram_quantile(0.99, sum by (broker, remote, probe, le) (rate(mqtt_bridge_delivery_seconds_bucket{{{SEL}}}{R})))", "{{broker}} to {{remote}} {{probe}} p99"),
                (f"sum by (broker, remote, probe, reason) (increase(mqtt_bridge_probe_errors_total{{{SEL}}}{R}))", "{{broker}} to {{remote}} {{probe}} failed: {{reason}}")]),
]
selfdash = [
    dict(type="stat", title="Firing alerts", unit="short", w=8, legend="{{alertname}}",
         desc="Alerts firing in mqtt-sentinel's own rule engine (mqtt_sentinel_alerts, its ALERTS series); details on /api/v1/alerts.",
         exprs=[f'sum by (alertname) (mqtt_sentinel_alerts{{{SELF},alertstate="firing"}})']),
    dict(type="timeseries", title="Notifications", unit="short", w=8, legend="{{receiver}} {{result}}",
         desc="Notification deliveries by receiver and result: success, failure (after retries) or dropped (queue full).",
         exprs=[f"sum by (receiver, result) (increase(mqtt_sentinel_notifications_total{{{SELF}}}{R}))"]),
    dict(type="timeseries", title="Rule evaluation", unit="s", w=8, legend="{{rule_group}}",
         desc="How long each rule group's last evaluation took (it must stay well under the evaluation interval), and failed rule evaluations; errors are on /api/v1/rules.",
         exprs=[(f"max by (rule_group) (mqtt_sentinel_rule_evaluation_duration_seconds{{{SELF}}})", "{{rule_group}} duration"),
                (f"sum by (rule_group) (increase(mqtt_sentinel_rule_evaluation_failures_total{{{SELF}}}{R}))", "{{rule_group}} failures")]),
    dict(type="timeseries", title="$SYS messages", unit="pps", legend="{{broker}}",
         desc="$SYS messages received per broker.",
         exprs=[f"rate(mqtt_sentinel_sys_messages_total{{{SELF}}}{R})"]),
    dict(type="timeseries", title="$SYS parse errors and dropped series", unit="short", legend="{{broker}}",
         desc="Payloads on mapped topics that were not valid values (the broker sent what its profile does not expect), values refused as impossible (a negative count), text on topics no profile knows, and updates refused by sys.max_series or because the topic fans out over a client id.",
         exprs=[(f"increase(mqtt_sentinel_sys_parse_errors_total{{{SELF}}}{R})", "{{broker}} parse errors"),
                (f"increase(mqtt_sentinel_sys_values_refused_total{{{SELF}}}{R})", "{{broker}} values refused"),
                (f"increase(mqtt_sentinel_sys_unmapped_text_total{{{SELF}}}{R})", "{{broker}} unmapped text"),
                (f"increase(mqtt_sentinel_sys_series_dropped_total{{{SELF}}}{R})", "{{broker}} series dropped")]),
    dict(type="timeseries", title="Queue drops", unit="short", legend="{{broker}}",
         desc="Messages dropped inside mqtt-sentinel because a broker task's queue was full.",
         exprs=[f"increase(mqtt_sentinel_messages_dropped_total{{{SELF}}}{R})"]),
    dict(type="stat", title="Build", unit="none", legend="{{version}} {{revision}}",
         desc="mqtt-sentinel version and git revision.",
         exprs=[f"mqtt_sentinel_build_info{{{SELF}}}"]),
]

out = {
    "mqtt-overview.json": dashboard("mqtt-overview", "MQTT brokers", "Per broker: session, uptime, version, clients, subscriptions, traffic, drops, retained/stored messages, heap, bridges, load. From mqtt-sentinel.", grid(overview)),
    "mqtt-probes.json": dashboard("mqtt-probes", "MQTT probes", "What devices experience: probe success, round-trip latency, acknowledgements, loss, connect latency and failures. From mqtt-sentinel.", grid(probes)),
    "mqtt-sentinel.json": dashboard("mqtt-sentinel", "mqtt-sentinel", "The exporter itself: alerts, notifications, rule evaluation, $SYS parsing and drops.", grid(selfdash), with_broker=False),
}
here = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "dashboards")
for name, d in out.items():
    with open(os.path.join(here, name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
