//! Every configured secret stays out of every output: logs (at debug level, through failed
//! deliveries and connects), `/metrics`, `/api/*`, the landing page, `/probe`, and `check`.
//! Broker-supplied strings reach the log escaped (no terminal control characters).

use crate::support::sentinel::BIN;
use crate::support::sink::Sink;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::process::Command;
use std::time::Duration;

const BROKER_PW: &str = "brokerPW-7d1e";
const MODULE_PW: &str = "modulePW-3c9a";
const HOOK_TOKEN: &str = "TOKEN-a8f2b";
const HOOK_QUERY: &str = "QSECRET-55e1";
const SLACK_TOKEN: &str = "SLACKTOKEN-9f0c";
const PD_KEY: &str = "0123456789abcdef0123456789abcdef";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIGNING_RAW: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn no_secret_in_any_output() {
    let broker = Mosquitto::builder().user("sentinel", BROKER_PW).start();
    // A receiver that refuses (400: not retried, its answer logged) and closed ports.
    let sink = Sink::start(&[400, 400, 400], false);
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str, v: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, v).unwrap();
        p.display().to_string()
    };
    let rules = file(
        "r.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    );
    let yaml = format!(
        r#"log: {{ level: debug }}
brokers:
  - name: m
    url: {url}
    username: sentinel
    password: {BROKER_PW}
    sys: {{ topic: "test/sys/#", profile: mosquitto }}
  - name: wrong-password
    url: {url}
    username: sentinel
    password_file: {wrong:?}
probe_modules:
  secure: {{ username: sentinel, password: {MODULE_PW} }}
rules: {{ files: [{rules:?}], evaluation_interval: 1s }}
notify:
  receivers:
    - {{ name: hook, type: webhook, url: "{hook}/{HOOK_TOKEN}?key={HOOK_QUERY}", signing_secret_file: {signing:?}, max_attempts: 1 }}
    - {{ name: chat, type: slack, url_file: {slack:?}, max_attempts: 2, timeout: 1s }}
    - {{ name: pager, type: pagerduty, url: "http://127.0.0.1:1/v2/enqueue", routing_key: {PD_KEY}, max_attempts: 1 }}
  route:
    receiver: hook
    routes:
      - {{ receiver: hook, continue: true }}
      - {{ receiver: chat, continue: true }}
      - {{ receiver: pager }}
"#,
        url = broker.url(),
        wrong = file("wrong", &format!("{BROKER_PW}-but-wrong\n")),
        hook = sink.url("/hook"),
        signing = file("signing", SIGNING),
        slack = file(
            "slack",
            &format!("http://127.0.0.1:1/services/T0/B0/{SLACK_TOKEN}\n")
        ),
    );
    let s = Sentinel::start(&yaml);
    s.wait_scrape(Duration::from_secs(30), "connected", |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
    });
    // deliveries attempted (and failed) on every receiver
    s.wait_scrape(Duration::from_secs(20), "every receiver tried", |sc| {
        ["hook", "chat", "pager"].iter().all(|r| {
            sc.value(
                "mqtt_sentinel_notifications_total",
                &[("receiver", r), ("result", "failure")],
            )
            .unwrap_or(0.0)
                >= 1.0
        })
    });
    // a broker-supplied topic with a bidi override (mosquitto refuses C0/C1 control
    // characters in topics, not Unicode format characters) and an invalid payload on a mapped
    // topic (a bridge's state) is logged
    let st = Command::new("mosquitto_pub")
        .args([
            "-p",
            &broker.port().to_string(),
            "-u",
            "sentinel",
            "-P",
            BROKER_PW,
        ])
        .args([
            "-t",
            "test/sys/broker/connection/\u{202e}der/state",
            "-m",
            "not-a-number",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(Duration::from_secs(30), "the odd topic logged", || {
        s.logs().contains("ignoring $SYS payload").then_some(())
    });

    let mut outputs = vec![
        ("log", s.logs()),
        ("/metrics", s.get("/metrics").body),
        ("/api/v1/alerts", s.get("/api/v1/alerts").body),
        ("/api/v1/rules", s.get("/api/v1/rules").body),
        ("/", s.get("/").body),
        (
            "/probe",
            s.get(&format!(
                "/probe?module=secure&target={}",
                broker.url().replace(':', "%3A").replace('/', "%2F")
            ))
            .body,
        ),
    ];
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&s.config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    outputs.push(("check", String::from_utf8_lossy(&check.stdout).into_owned()));
    assert!(
        outputs[6].1.contains("<secret>"),
        "check shows secrets as <secret>"
    );
    assert!(outputs[5].1.contains("probe_success 1"), "{}", outputs[5].1);

    for (what, text) in &outputs {
        for secret in [
            BROKER_PW,
            MODULE_PW,
            HOOK_TOKEN,
            HOOK_QUERY,
            SLACK_TOKEN,
            PD_KEY,
            SIGNING_RAW,
        ] {
            assert!(!text.contains(secret), "{what} contains {secret}:\n{text}");
        }
    }
    let log = &outputs[0].1;
    assert!(!log.contains('\u{202e}'), "a bidi override reached the log");
    let line = log
        .lines()
        .find(|l| l.contains("ignoring $SYS payload"))
        .unwrap_or("");
    assert!(
        line.contains(r"\u{202e}der"),
        "the topic is logged escaped: {line}"
    );
}
