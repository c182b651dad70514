//! Bridge probes through a real mosquitto bridge: published on the edge broker's watching
//! session, received on the central broker's (`probe::bridge`); and the one-shot
//! `mqtt-sentinel probe --kind bridge` over the same bridges (`probe::oneshot::run_bridge`).

use crate::support::proxy::{Mode, Proxy};
use crate::support::scrape::Scrape;
use crate::support::sentinel::BIN;
use crate::support::wait::wait_until;
use crate::support::{Mosquitto, Sentinel};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// An edge mosquitto bridged to `central` with the given `topic` lines.
fn edge(central: &Mosquitto, topics: &[&str], extra: &[&str]) -> Mosquitto {
    let lines: Vec<&str> = topics.iter().chain(extra).copied().collect();
    Mosquitto::bridge_edge(central.addr(), 5, &lines)
}

/// Both brokers watched; one bridge probe from edge to central, `edge/probe` here and
/// `site1/probe` there, every second.
fn sentinel(edge: &Mosquitto, central: &Mosquitto) -> Sentinel {
    Sentinel::start(&format!(
        "brokers:\n  - name: edge\n    url: {}\n    probes:\n      - {{kind: roundtrip, interval: 1s, timeout: 10s}}\n      - {{kind: bridge, name: up, to: central, topic: edge/probe, remote_topic: site1/probe, interval: 1s, timeout: 3s}}\n  - name: central\n    url: {}\n    probes:\n      - {{kind: roundtrip, interval: 1s, timeout: 10s}}\n",
        edge.url(),
        central.url()
    ))
}

const PROBE: [(&str, &str); 3] = [("broker", "edge"), ("remote", "central"), ("probe", "up")];

fn bridge(sc: &Scrape, name: &str) -> f64 {
    sc.value(name, &PROBE).unwrap_or(0.0)
}

fn errors(sc: &Scrape, reason: &str) -> f64 {
    let mut l = PROBE.to_vec();
    l.push(("reason", reason));
    sc.value("mqtt_bridge_probe_errors_total", &l)
        .unwrap_or(0.0)
}

fn late(sc: &Scrape) -> f64 {
    let mut l = PROBE.to_vec();
    l.push(("reason", "late"));
    sc.value("mqtt_bridge_probe_ignored_total", &l)
        .unwrap_or(0.0)
}

fn healthy(sc: &Scrape, broker: &str) -> bool {
    sc.value(
        "mqtt_probe_health",
        &[("broker", broker), ("state", "healthy")],
    ) == Some(1.0)
}

fn delivering(sc: &Scrape, at_least: f64) -> bool {
    bridge(sc, "mqtt_bridge_probe_success") == 1.0
        && bridge(sc, "mqtt_bridge_probe_received_total") >= at_least
        && bridge(sc, "mqtt_bridge_delivery_seconds_count") >= at_least
}

#[test]
fn a_bridge_probe_crosses_a_remapping_bridge() {
    let central = Mosquitto::start();
    let edge = edge(&central, &["topic probe out 1 edge/ site1/"], &[]);
    let s = sentinel(&edge, &central);
    let sc = s.wait_scrape(WAIT, "bridge probe delivered", |sc| delivering(sc, 3.0));
    assert_eq!(bridge(&sc, "mqtt_bridge_probe_duplicates_total"), 0.0);
    assert!(
        healthy(&sc, "edge") && healthy(&sc, "central"),
        "{}",
        s.logs()
    );
    // every message sent was received, apart from one still in flight
    let (sent, received) = (
        bridge(&sc, "mqtt_bridge_probe_sent_total"),
        bridge(&sc, "mqtt_bridge_probe_received_total"),
    );
    assert!(sent - received <= 1.0, "sent {sent}, received {received}");
    assert_eq!(bridge(&sc, "mqtt_bridge_probe_lost_total"), 0.0);
    // the new families pass promtool's lint with series in them
    let body = s.get("/metrics").body;
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    p.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = p.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}"
    );
}

#[test]
fn a_connected_bridge_that_does_not_carry_the_topic_fails_the_probe_not_the_flag() {
    let central = Mosquitto::start();
    // connected, but forwards only sensors/#: the probe's topic is not mapped
    let edge = edge(&central, &["topic sensors/# out 1"], &[]);
    let s = sentinel(&edge, &central);
    let flag = [("broker", "edge"), ("bridge", "uplink")];
    let sc = s.wait_scrape(WAIT, "flag up, probe not delivered", |sc| {
        sc.value("mqtt_broker_bridge_up", &flag) == Some(1.0) && errors(sc, "not_delivered") >= 2.0
    });
    assert_eq!(bridge(&sc, "mqtt_bridge_probe_success"), 0.0);
    assert_eq!(bridge(&sc, "mqtt_bridge_probe_received_total"), 0.0);
    assert!(bridge(&sc, "mqtt_bridge_probe_lost_total") >= 2.0);
    // the failing bridge makes neither broker down
    assert!(
        healthy(&sc, "edge") && healthy(&sc, "central"),
        "{}",
        s.logs()
    );
}

#[test]
fn remote_killed_loses_bridge_probes_then_recovers() {
    let mut central = Mosquitto::start();
    let edge = edge(&central, &["topic probe out 1 edge/ site1/"], &[]);
    let s = sentinel(&edge, &central);
    s.wait_scrape(WAIT, "delivered", |sc| delivering(sc, 2.0));
    central.kill();
    let sc = s.wait_scrape(WAIT, "lost with the remote down", |sc| {
        bridge(sc, "mqtt_bridge_probe_lost_total") >= 1.0
            && bridge(sc, "mqtt_bridge_probe_success") == 0.0
    });
    assert!(errors(&sc, "remote_not_connected") + errors(&sc, "not_delivered") >= 1.0);
    assert!(healthy(&sc, "edge"), "{}", s.logs());
    let received = bridge(&sc, "mqtt_bridge_probe_received_total");
    central.restart();
    s.wait_scrape(WAIT, "delivered again", |sc| delivering(sc, received + 2.0));
}

/// Only the bridge's link stalls: a fault proxy between the edge's bridge `address` and the
/// central broker stops forwarding, while both brokers and both watching sessions stay
/// healthy. The bridge (keepalive 60 s: neither end notices) keeps taking the edge's
/// messages, one in flight on the stalled socket (`max_inflight_messages 1`) and up to
/// `queue` more queued (`max_queued_messages`); the rest are dropped. Checks what holds
/// whatever the queue: while stalled, runs fail with `not_delivered` (never
/// `remote_not_connected`) and the flag reads connected; no session to either broker ends;
/// after the stall the probe delivers again. Returns the runs lost during the stall and how
/// many of them arrived late (`ignored{reason="late"}`) once the link resumed.
fn stall_the_bridge_link(queue: u32) -> (f64, f64) {
    let central = Mosquitto::start();
    let link = Proxy::start(central.addr());
    let queued = format!("max_queued_messages {queue}");
    let edge = Mosquitto::bridge_edge(
        link.addr,
        60,
        &[
            "topic probe out 1 edge/ site1/",
            "max_inflight_messages 1",
            &queued,
        ],
    );
    let s = sentinel(&edge, &central);
    let flag = [("broker", "edge"), ("bridge", "uplink")];
    let flag_up = |sc: &Scrape| sc.value("mqtt_broker_bridge_up", &flag) == Some(1.0);
    let before = s.wait_scrape(WAIT, "delivered, flag up", |sc| {
        delivering(sc, 2.0) && flag_up(sc)
    });
    let lost_before = bridge(&before, "mqtt_bridge_probe_lost_total");
    link.set(Mode::Stall);
    // more runs than a two-message queue holds, each failing
    let sc = s.wait_scrape(WAIT, "failing while the link is stalled", |sc| {
        bridge(sc, "mqtt_bridge_probe_success") == 0.0
            && errors(sc, "not_delivered") >= 6.0
            && bridge(sc, "mqtt_bridge_probe_lost_total") >= lost_before + 6.0
    });
    // the remote's session stayed subscribed throughout; the flag and both brokers are fine
    assert_eq!(errors(&sc, "remote_not_connected"), 0.0);
    assert!(
        flag_up(&sc),
        "the bridge flag reads connected while the link is stalled"
    );
    for b in ["edge", "central"] {
        assert_eq!(sc.value("mqtt_up", &[("broker", b)]), Some(1.0), "{b}");
        assert!(healthy(&sc, b), "{b}: {}", s.logs());
    }
    let received = bridge(&sc, "mqtt_bridge_probe_received_total");
    link.set(Mode::Pass);
    // the bridge sends what it kept in order, before the runs after the stall
    let sc = s.wait_scrape(WAIT, "delivered after the link resumed", |sc| {
        delivering(sc, received + 2.0)
    });
    let late = late(&sc);
    let lost = bridge(&sc, "mqtt_bridge_probe_lost_total") - lost_before;
    eprintln!(
        "stalled bridge link, max_queued_messages {queue}: {lost} runs lost, {late} of them arrived late, {} never",
        lost - late
    );
    // no session to either broker ever ended: neither read down at any time
    for b in ["edge", "central"] {
        assert_eq!(
            sc.value(
                "mqtt_connects_total",
                &[("broker", b), ("result", "success")]
            ),
            Some(1.0),
            "{b}: {}",
            s.logs()
        );
        assert!(
            sc.find("mqtt_disconnects_total", &[("broker", b)])
                .is_empty(),
            "{b}"
        );
        assert!(healthy(&sc, b), "{b}: {}", s.logs());
    }
    (lost, late)
}

/// A two-message queue: what it holds arrives late once the link resumes, the rest never.
#[test]
fn a_stalled_bridge_link_delivers_its_queue_late_and_loses_the_rest() {
    let (lost, late) = stall_the_bridge_link(2);
    assert!(
        late >= 1.0 && lost - late >= 1.0,
        "lost {lost}, late {late}"
    );
}

/// A queue larger than the stall: every run lost during it arrives late, none is dropped.
#[test]
fn a_stalled_bridge_link_with_a_large_queue_delivers_every_run_late() {
    let (lost, late) = stall_the_bridge_link(1000);
    assert!(lost >= 6.0 && late == lost, "lost {lost}, late {late}");
}

#[test]
fn a_reload_that_restarts_either_side_keeps_the_bridge_probe_working() {
    let central = Mosquitto::start();
    let edge = edge(&central, &["topic probe out 1 edge/ site1/"], &[]);
    let s = sentinel(&edge, &central);
    let write = |edge_timeout: &str, central_keep_alive: &str| {
        std::fs::write(
            &s.config_path,
            format!(
                "listen: \"127.0.0.1:0\"\nbrokers:\n  - name: edge\n    url: {}\n    probes:\n      - {{kind: bridge, name: up, to: central, topic: edge/probe, remote_topic: site1/probe, interval: 1s, timeout: {edge_timeout}}}\n  - name: central\n    url: {}\n    keep_alive: {central_keep_alive}\n",
                edge.url(),
                central.url()
            ),
        )
        .expect("write config");
    };
    s.wait_scrape(WAIT, "delivered", |sc| delivering(sc, 2.0));
    // both restarted (edge's probes changed, central's keep_alive)
    write("3s", "20s");
    assert_eq!(s.post("/-/reload").status, 200);
    s.wait_scrape(WAIT, "delivered after both restarted", |sc| {
        delivering(sc, 2.0)
            && sc
                .value("mqtt_probe_success", &[("broker", "edge")])
                .is_none()
    });
    // only the receiving side restarted: the publishing side's routes are still followed
    let received = bridge(&s.scrape(), "mqtt_bridge_probe_received_total");
    write("3s", "25s");
    let r = s.post("/-/reload");
    assert!(
        r.status == 200 && r.body.contains("restarted broker central") && !r.body.contains("edge"),
        "{}",
        r.body
    );
    s.wait_scrape(WAIT, "delivered after central restarted", |sc| {
        delivering(sc, received + 3.0)
    });
    // only the publishing side restarted: its series start again at 0, and deliver
    write("4s", "25s");
    let r = s.post("/-/reload");
    assert!(
        r.status == 200 && r.body.contains("restarted broker edge") && !r.body.contains("central"),
        "{}",
        r.body
    );
    s.wait_scrape(WAIT, "delivered after edge restarted", |sc| {
        delivering(sc, 2.0)
    });
}

/// A reload that removes the last bridge probe ending on central restarts only the edge's
/// task; central's watching session, still the same one, unsubscribes from the remote topic.
/// Seen in central's own log (`log_type unsubscribe` writes `<client id> <topic>`).
#[test]
fn a_reload_that_removes_the_bridge_probe_unsubscribes_the_remote_topic() {
    let central = Mosquitto::builder().conf("log_type unsubscribe").start();
    let edge = edge(&central, &["topic probe out 1 edge/ site1/"], &[]);
    let config = |edge_probes: &str| {
        format!(
            "brokers:\n  - name: edge\n    url: {}\n{edge_probes}  - name: central\n    url: {}\n    client_id: sentinel-central\n",
            edge.url(),
            central.url()
        )
    };
    let s = Sentinel::start(&config(
        "    probes:\n      - {kind: bridge, name: up, to: central, topic: edge/probe, remote_topic: site1/probe, interval: 1s, timeout: 3s}\n",
    ));
    s.wait_scrape(WAIT, "delivered", |sc| delivering(sc, 2.0));
    let unsubscribed = || {
        central
            .log()
            .lines()
            .any(|l| l.ends_with(": sentinel-central site1/probe"))
    };
    assert!(!unsubscribed(), "{}", central.log());
    std::fs::write(
        &s.config_path,
        format!("listen: \"127.0.0.1:0\"\n{}", config("")),
    )
    .expect("write config");
    let r = s.post("/-/reload");
    assert!(
        r.status == 200 && r.body.contains("restarted broker edge") && !r.body.contains("central"),
        "{}",
        r.body
    );
    crate::support::wait_until(WAIT, "central unsubscribed from site1/probe", || {
        unsubscribed().then_some(())
    });
    // the same session did it: central's task was not restarted
    let sc = s.scrape();
    assert_eq!(
        sc.value(
            "mqtt_connects_total",
            &[("broker", "central"), ("result", "success")]
        ),
        Some(1.0),
        "{}",
        s.logs()
    );
}
/// A central mosquitto and an edge bridged to it with the `topics` lines, once the bridge is
/// connected (central logs its client `uplink`): (central, edge).
fn bridged(topics: &[&str]) -> (Mosquitto, Mosquitto) {
    let central = Mosquitto::start();
    let edge = edge(&central, topics, &[]);
    wait_until(WAIT, "the bridge connected to central", || {
        central.log().contains(" as uplink").then_some(())
    });
    (central, edge)
}

/// `mqtt-sentinel probe --kind bridge <edge> --to <central> --topic edge/probe
/// --remote-topic site1/probe`, without the environment's config.
fn bridge_probe_command(edge: &Mosquitto, central: &Mosquitto) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "probe",
        "--kind",
        "bridge",
        &edge.url(),
        "--to",
        &central.url(),
    ])
    .args(["--topic", "edge/probe", "--remote-topic", "site1/probe"])
    .env_remove("MQTT_SENTINEL_CONFIG");
    c
}

/// `mqtt-sentinel probe --kind bridge <edge> --to <central>` from `edge/probe` to
/// `site1/probe` with `args`, and a module `b` whose `degraded_rtt` is out of reach (so the
/// exit code says what arrived, never how fast): (exit code, the JSON object, the output).
fn probe_bridge(
    edge: &Mosquitto,
    central: &Mosquitto,
    args: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "probe_modules:\n  b: {timeout: 3s, degraded_rtt: 1h}\n",
    )
    .expect("write config");
    let out = bridge_probe_command(edge, central)
        .args(["--module", "b", "--json"])
        .args(args)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run mqtt-sentinel probe");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let j =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    (out.status.code(), j, text)
}

#[test]
fn the_bridge_probe_cli_crosses_a_remapping_bridge() {
    let (central, edge) = bridged(&["topic probe out 1 edge/ site1/"]);
    let (code, j, text) = probe_bridge(&edge, &central, &["--qos", "1", "--count", "5"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(j["kind"], "bridge", "{text}");
    assert_eq!(j["state"], "healthy", "{text}");
    assert_eq!(j["reason"], "success", "{text}");
    assert_eq!(j["to"], central.url().as_str(), "{text}");
    assert_eq!(j["remote_topic"], "site1/probe", "{text}");
    assert_eq!(
        (j["sent"].as_u64(), j["received"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(j["lost"], 0, "{text}");
    assert_eq!(j["duplicates"], 0, "{text}");
    assert_eq!(j["out_of_order"], 0, "{text}");
    let samples = j["rtt_samples_seconds"].as_array().expect("samples");
    assert_eq!(samples.len(), 5, "{text}");
    assert!(samples.iter().all(|s| s.as_f64().is_some_and(|x| x >= 0.0)));
    // the same run without --json prints one line naming both brokers
    let line = bridge_probe_command(&edge, &central)
        .args(["--count", "2"])
        .output()
        .expect("run mqtt-sentinel probe");
    let stdout = String::from_utf8_lossy(&line.stdout);
    assert!(
        stdout.contains(&format!("{} -> {} ", edge.url(), central.url()))
            && stdout.contains("2/2 messages across at QoS 1"),
        "{stdout}{}",
        String::from_utf8_lossy(&line.stderr)
    );
}

#[test]
fn the_bridge_probe_cli_fails_when_the_bridge_does_not_carry_the_topic() {
    // connected, but forwards only sensors/#: the probe's topic is not mapped
    let (central, edge) = bridged(&["topic sensors/# out 1"]);
    let (code, j, text) = probe_bridge(&edge, &central, &["--count", "3"]);
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(j["state"], "down", "{text}");
    // edge acknowledged the publish; the bridge did not deliver it
    assert_eq!(j["reason"], "not_delivered", "{text}");
    assert_eq!(j["received"], 0, "{text}");
    assert!(j["lost"].as_u64().is_some_and(|n| n >= 1), "{text}");
    // At QoS 0 nothing says "not delivered" but the silence: the first timeout with nothing
    // arrived ends the run (one module timeout, not one per message of --count).
    let (code, j, text) = probe_bridge(&edge, &central, &["--qos", "0", "--count", "3"]);
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(j["reason"], "timeout", "{text}");
    assert_eq!(
        (j["sent"].as_u64(), j["received"].as_u64()),
        (Some(1), Some(0)),
        "{text}"
    );
}

#[test]
fn the_bridge_probe_cli_refuses_incomplete_arguments() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("probe")
            .args(args)
            .env_remove("MQTT_SENTINEL_CONFIG")
            .output()
            .expect("run mqtt-sentinel probe");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--kind", "bridge", "mqtt://127.0.0.1:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("error: --kind bridge needs --to"), "{err}");
    let (code, err) = run(&["mqtt://127.0.0.1:1", "--to", "mqtt://127.0.0.1:2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("go with --kind bridge"), "{err}");
    let (code, err) = run(&[
        "--kind",
        "bridge",
        "mqtt://127.0.0.1:1",
        "--to",
        "mqtt://127.0.0.1:2",
        "--topic",
        "a/#",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must be a topic name"), "{err}");
}
