use super::*;
use std::time::Duration;

fn env(k: &str) -> Option<String> {
    match k {
        "MQTT_PASSWORD" => Some("hunter2".into()),
        "HOST" => Some("broker.internal".into()),
        _ => None,
    }
}

fn p(text: &str) -> Result<Config, ConfigError> {
    parse(text, "test.yaml", Path::new("."), &env)
}

#[test]
fn embedded_default_watches_localhost() {
    let c = parse(DEFAULT_YAML, DEFAULT_SOURCE, Path::new("."), &env).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:10883");
    assert_eq!(c.brokers.len(), 1);
    let b = &c.brokers[0];
    assert_eq!(b.name, "local");
    assert_eq!(b.url.paho_uri(), "tcp://localhost:1883");
    assert_eq!(b.protocol, Protocol::Auto);
    assert_eq!(b.keep_alive, Duration::from_secs(30));
    assert_eq!(b.reconnect.max, Duration::from_secs(30));
    assert!(b.sys.enabled);
    assert_eq!(b.sys.topic, "$SYS/#");
    assert_eq!(b.sys.prefix(), "$SYS/");
    assert_eq!(b.sys.max_series, 500);
    assert_eq!(b.client_id, None);
}

#[test]
fn blank_file_means_defaults() {
    let c = p("# nothing here\n").unwrap();
    assert_eq!(c.brokers[0].url.to_string(), "mqtt://localhost:1883");
}

#[test]
fn env_expansion_and_secrets() {
    let c = p("brokers:\n  - name: a\n    url: mqtts://${HOST}:8884\n    username: u\n    password: ${MQTT_PASSWORD}\n").unwrap();
    let b = &c.brokers[0];
    assert_eq!(b.url.paho_uri(), "ssl://broker.internal:8884");
    assert_eq!(b.password.as_ref().unwrap().current().expose(), "hunter2");
    assert_eq!(format!("{:?}", b.password), "Some(<secret>)");
    let summary = c.summary();
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(summary.contains("password <secret>"), "{summary}");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn expand_env_rules() {
    assert_eq!(expand_env("a$${b}c", &env).unwrap(), "a${b}c");
    assert_eq!(expand_env("$5 and $", &env).unwrap(), "$5 and $");
    assert_eq!(
        expand_env("x${HOST}y", &env).unwrap(),
        "xbroker.internal y".replace(' ', "")
    );
    assert_eq!(
        expand_env("${NOPE}", &env).unwrap_err(),
        "environment variable NOPE is not set"
    );
    assert_eq!(expand_env("${HOST", &env).unwrap_err(), "unterminated ${");
    assert_eq!(
        expand_env("${1X}", &env).unwrap_err(),
        "invalid environment variable name \"1X\""
    );
}

#[test]
fn urls() {
    let c = p("brokers:\n  - url: ws://[::1]:9001/mqtt\n  - url: mqtt://127.0.0.1\n").unwrap();
    assert_eq!(c.brokers[0].url.paho_uri(), "ws://[::1]:9001/mqtt");
    assert_eq!(c.brokers[0].name, "::1:9001");
    assert_eq!(c.brokers[1].url.port, 1883);
    assert_eq!(c.brokers[1].name, "127.0.0.1:1883");
}

#[test]
fn durations() {
    let c = p("brokers:\n  - url: mqtt://h\n    keep_alive: 1m30s\n    reconnect: {initial_backoff: 100ms, max_backoff: 2s}\n").unwrap();
    assert_eq!(c.brokers[0].keep_alive, Duration::from_secs(90));
    assert_eq!(c.brokers[0].reconnect.initial, Duration::from_millis(100));
}

/// Each bad file under tests/fixtures/config/bad with the exact message `check` prints after
/// the file name. Secrets in these files (`s3cr3t-in-url`, `pw-inline-secret`) must not appear.
const BAD: &[(&str, &str)] = &[
    (
        "backoff-order.yaml",
        r#"6:20: brokers[0].reconnect.max_backoff: max_backoff 1s is shorter than initial_backoff 10s"#,
    ),
    (
        "bad-duration.yaml",
        r#"4:22: brokers[0].connect_timeout: invalid duration "soon": expected number at 0 (write it like "30s" or "500ms")"#,
    ),
    (
        "bad-listen.yaml",
        r#"1:9: listen: invalid address "0.0.0.0:99999": expected ip:port such as "0.0.0.0:10883""#,
    ),
    (
        "bad-log-format.yaml",
        r#"2:11: log.format: unknown format "logfmt": expected text or json"#,
    ),
    (
        "bad-log-level.yaml",
        r#"2:10: log.level: unknown level "verbose": expected error, warn, info, debug or trace"#,
    ),
    (
        "bad-name.yaml",
        r#"2:11: brokers[0].name: invalid name "my broker": use 1-64 characters from A-Z a-z 0-9 - _ . :"#,
    ),
    (
        "bad-profile.yaml",
        r#"5:16: brokers[0].sys.profile: unknown profile "hivemq": expected auto, mosquitto, amqtt, emqx, vernemq, nanomq, rmqtt, aedes, generic (or one defined under sys_profiles)"#,
    ),
    (
        "bad-sys-profile-parser.yaml",
        r#"10:83: sys_profiles.acme.metrics[1].parser: parser "number" does not fit "mqtt_broker_messages_received_total": a counter (name ends in _total) takes the counter or event parser"#,
    ),
    (
        "bad-sys-profile-when.yaml",
        "9:114: sys_profiles.acme.metrics[1].when.is: unknown field `is`, expected `field` or `equals`",
    ),
    (
        "bad-sys-profile-field.yaml",
        r#"9:17: sys_profiles.acme.metrics[1].topic: topic "acme/stats" maps the same field and condition twice"#,
    ),
    (
        "bad-sys-profile-key.yaml",
        "4:72: sys_profiles.acme.metrics[0].unit: unknown field `unit`, expected one of `topic`, `metric`, `parser`, `scale`, `labels`, `help`, `field`, `when`, `min`, `max`, `unavailable`",
    ),
    (
        "bad-protocol.yaml",
        r#"4:15: brokers[0].protocol: unknown protocol "v4": expected auto, v5 or v3.1.1"#,
    ),
    (
        "bad-sys-topic.yaml",
        r#"5:14: brokers[0].sys.topic: invalid topic filter "$SYS/+/clients": expected a prefix ending in /# such as "$SYS/#""#,
    ),
    (
        "bad-url-scheme.yaml",
        r#"3:10: brokers[0].url: unsupported scheme "http" in "http://localhost:1883": use mqtt, mqtts, ws or wss"#,
    ),
    (
        "brokers-not-a-list.yaml",
        r#"1:10: brokers: invalid type: string "mqtt://localhost:1883", expected a sequence"#,
    ),
    (
        "duplicate-name.yaml",
        r#"4:11: brokers[1].name: duplicate broker name "a" (also brokers[0]); names are the `broker` label and must be unique"#,
    ),
    (
        "keep-alive-number.yaml",
        r#"4:17: brokers[0].keep_alive: invalid duration "30": time unit needed, for example 30sec or 30ms (write it like "30s" or "500ms")"#,
    ),
    (
        "keep-alive-range.yaml",
        r#"4:17: brokers[0].keep_alive: keep_alive 100000s is out of range: MQTT allows 1s to 65535s"#,
    ),
    (
        "key-without-cert.yaml",
        r#"5:17: brokers[0].tls.key_file: key_file needs cert_file"#,
    ),
    (
        "missing-ca-file.yaml",
        r#"5:16: brokers[0].tls.ca_file: cannot read "no-such-ca.pem": No such file or directory (os error 2)"#,
    ),
    (
        "missing-url.yaml",
        r#"2:9: brokers[0]: missing field `url`"#,
    ),
    (
        "negative-max-series.yaml",
        r#"5:19: brokers[0].sys.max_series: invalid type: integer `-1`, expected usize"#,
    ),
    (
        "password-and-file.yaml",
        r#"6:20: brokers[0].password_file: set either password or password_file, not both"#,
    ),
    (
        "server-name.yaml",
        r#"5:20: brokers[0].tls.server_name: server_name "broker.example" cannot be honoured: the Paho C client verifies the host of the url and has no SNI override; put the certificate's name in the url, or set insecure_skip_verify"#,
    ),
    (
        "tls-on-plain-url.yaml",
        r#"4:5: brokers[0].tls: tls is set but url "mqtt://localhost:1883" is not a TLS url (use mqtts:// or wss://)"#,
    ),
    (
        "unknown-tls-field.yaml",
        r#"5:7: brokers[0].tls.ca_fil: unknown field `ca_fil`, expected one of `ca_file`, `cert_file`, `key_file`, `insecure_skip_verify`, `server_name`"#,
    ),
    (
        "unknown-top-field.yaml",
        r#"1:1: listn: unknown field `listn`, expected one of `listen`, `log`, `brokers`, `probe_modules`, `probe_allowed_targets`, `rules`, `notify`, `web`, `sys_profiles`"#,
    ),
    (
        "unset-env.yaml",
        r#"5:15: brokers[0].password: environment variable MQTT_SENTINEL_TEST_UNSET_VAR is not set"#,
    ),
    (
        "url-with-credentials.yaml",
        r#"3:10: brokers[0].url: credentials in the url are not allowed: use username and password_file"#,
    ),
    (
        "yaml-syntax.yaml",
        r#"3:9: mapping values are not allowed in this context"#,
    ),
    (
        "probe-bad-qos.yaml",
        r#"5:32: brokers[0].probes[0].qos: invalid qos 3: expected 0, 1 or 2"#,
    ),
    (
        "probe-bad-kind.yaml",
        r#"5:16: brokers[0].probes[0].kind: unknown probe kind "ping": expected roundtrip, connect, retained, session, will, bridge"#,
    ),
    (
        "probe-bridge-unknown-broker.yaml",
        r#"5:28: brokers[0].probes[0].to: unknown broker "cloud": expected one of edge, central"#,
    ),
    (
        "probe-bridge-same-broker.yaml",
        r#"7:13: brokers[0].probes[1].to: a bridge probe goes from one broker to another: "edge" is the broker it is configured under"#,
    ),
    (
        "probe-bridge-wildcard.yaml",
        r#"8:23: brokers[0].probes[0].remote_topic: invalid topic "site/+/sentinel/bridge": a topic name, not a filter (no + or #), 1-65535 bytes"#,
    ),
    (
        "probe-bridge-no-topic.yaml",
        r#"5:9: brokers[0].probes[0]: a bridge probe needs `topic`: the topic it publishes here, one the bridge forwards"#,
    ),
    (
        "probe-topic-on-roundtrip.yaml",
        r#"5:34: brokers[0].probes[0].topic: topic applies to bridge probes only, not roundtrip"#,
    ),
    (
        "probe-client-id-clash.yaml",
        r#"6:16: brokers[0].probes[1].name: probe "x-session" (connect) would connect as client id <id>-x-session, which probes[0] "x" (session) also uses: rename one of them"#,
    ),
    (
        "probe-duplicate-name.yaml",
        r#"6:16: brokers[0].probes[1].name: duplicate probe name "x" (also probes[0])"#,
    ),
    (
        "probe-topic-prefix-dot.yaml",
        r#"4:25: brokers[0].probe_topic_prefix: invalid probe topic prefix "probes/v1.0": no leading $ or /, no trailing /, and no + # . or spaces (RabbitMQ and NATS rewrite dots)"#,
    ),
    (
        "probe-allowed-targets-regex.yaml",
        r#"1:24: probe_allowed_targets: invalid regular expression "mqtt://(unclosed": error: unclosed group"#,
    ),
    (
        "probe-qos-on-connect.yaml",
        r#"5:30: brokers[0].probes[0].qos: qos applies to roundtrip probes only, not connect"#,
    ),
    (
        "module-payload-too-small.yaml",
        r#"3:20: probe_modules.quick.payload_bytes: payload_bytes 8 is out of range 32..=262144"#,
    ),
    (
        "notify-unknown-receiver.yaml",
        r#"5:15: notify.route.receiver: unknown receiver "opps""#,
    ),
    (
        "notify-pagerduty-no-key.yaml",
        r#"3:11: notify.receivers[0].routing_key: a pagerduty receiver needs routing_key or routing_key_file"#,
    ),
    (
        "notify-bad-matcher.yaml",
        r#"7:21: notify.route.routes[0].matchers[0]: bad matcher "=critical": expected name="value" (=, !=, =~, !~)"#,
    ),
    (
        "notify-unknown-type.yaml",
        r#"3:24: notify.receivers[0].type: unknown receiver type "email": use webhook, alertmanager, slack, teams, discord or pagerduty"#,
    ),
    (
        "tls-ca-not-pem.yaml",
        r#"5:16: brokers[0].tls.ca_file: no PEM certificate in the file"#,
    ),
    (
        "probe-will-on-websocket.yaml",
        r#"5:16: brokers[0].probes[0].kind: will probes need an mqtt:// or mqtts:// broker url: the probe speaks MQTT itself over TCP or TLS to drop its connection without DISCONNECT (Paho always sends one)"#,
    ),
    (
        "probe-will-delay-v311.yaml",
        r#"6:34: brokers[0].probes[0].will_delay: will_delay needs MQTT 5: protocol v3.1.1 has no will delay"#,
    ),
    (
        "probe-will-delay-on-session.yaml",
        r#"5:37: brokers[0].probes[0].will_delay: will_delay applies to will probes only, not session"#,
    ),
    (
        "probe-will-delay-no-room.yaml",
        r#"5:34: brokers[0].probes[0].will_delay: will_delay 2s needs a timeout of at least 4s (the delay, 1s for the broker's tick, 1s watching a clean DISCONNECT); the probe's timeout is 3.5s"#,
    ),
    (
        "probe-will-delay-past-timeout.yaml",
        r#"5:34: brokers[0].probes[0].will_delay: will_delay 5s needs a timeout of at least 7s (the delay, 1s for the broker's tick, 1s watching a clean DISCONNECT); the probe's timeout is 5s"#,
    ),
    (
        "probe-will-delay-rounded-past-timeout.yaml",
        r#"5:34: brokers[0].probes[0].will_delay: will_delay 500ms (sent as 1s: MQTT counts whole seconds) needs a timeout of at least 3s (the delay, 1s for the broker's tick, 1s watching a clean DISCONNECT); the probe's timeout is 800ms"#,
    ),
    (
        "module-will-delay-past-timeout.yaml",
        r#"3:31: probe_modules.w.will_delay: will_delay 10s needs a timeout of at least 12s (the delay, 1s for the broker's tick, 1s watching a clean DISCONNECT); the probe's timeout is 5s"#,
    ),
    (
        "rules-missing-file.yaml",
        r#"2:12: rules.files[0]: tests/fixtures/config/bad/../rules/missing.yml: no such rule file"#,
    ),
];

#[test]
fn bad_configs_give_exact_messages() {
    let dir = Path::new("tests/fixtures/config/bad");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = BAD.iter().map(|(n, _)| n.to_string()).collect();
    in_table.sort();
    assert_eq!(
        on_disk, in_table,
        "every bad fixture needs a row, every row a fixture"
    );
    assert!(BAD.len() >= 15);
    for (name, want) in BAD {
        let path = dir.join(name);
        let err = load(&path).expect_err(name).to_string();
        assert_eq!(err, format!("{}:{want}", path.display()), "{name}");
        for secret in ["s3cr3t-in-url", "pw-inline-secret"] {
            assert!(!err.contains(secret), "{name} leaks a secret: {err}");
        }
    }
}

#[test]
fn probe_defaults_and_modules() {
    let c = p("brokers:\n  - url: mqtt://h\n").unwrap();
    let b = &c.brokers[0];
    assert_eq!(b.probes.len(), 1);
    assert_eq!(b.probes[0].name, "rtt-qos1");
    assert_eq!(
        b.probes[0].kind,
        ProbeKind::Roundtrip {
            qos: Qos::AtLeastOnce,
            payload_bytes: 64
        }
    );
    assert_eq!(b.probes[0].interval, Duration::from_secs(10));
    assert_eq!(b.probe_topic_prefix, "mqtt-sentinel");
    assert_eq!(b.degraded_rtt, Duration::from_millis(100));
    assert!(c.probe_modules.contains_key("default"));
    assert!(c.probe_allowed_targets.is_none());

    let c = p("brokers:\n  - url: mqtt://h\n    probes:\n      - {qos: 2, interval: 1s}\n      - {kind: connect}\n      - {kind: retained, name: keep}\nprobe_modules:\n  fast: {qos: 0, timeout: 1s}\nprobe_allowed_targets: 'mqtt://127\\.0\\.0\\.1:\\d+'\n").unwrap();
    let names: Vec<&str> = c.brokers[0]
        .probes
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["rtt-qos2", "connect", "keep"]);
    let c2 = p("brokers:\n  - url: mqtts://h\n    probes:\n      - {kind: session}\n      - {kind: will, will_delay: 2s, timeout: 10s}\nprobe_modules:\n  w: {kind: will, qos: 2}\n").unwrap();
    let b2 = &c2.brokers[0];
    assert_eq!(b2.probes[0].kind, ProbeKind::Session);
    assert_eq!(b2.probes[0].interval, Duration::from_secs(60));
    assert_eq!(
        b2.probes[1].kind,
        ProbeKind::Will {
            delay: Some(Duration::from_secs(2))
        }
    );
    assert_eq!(b2.probes[1].name, "will");
    assert_eq!(c2.probe_modules["w"].kind, ProbeKind::Will { delay: None });
    assert_eq!(
        c2.probe_modules["w"].kind_named("roundtrip"),
        Some(ProbeKind::Roundtrip {
            qos: Qos::ExactlyOnce,
            payload_bytes: 64
        })
    );
    assert_eq!(c2.probe_modules["w"].kind_named("ping"), None);
    assert_eq!(c.brokers[0].probes[1].interval, Duration::from_secs(30));
    assert_eq!(c.probe_modules["fast"].qos, Qos::AtMostOnce);
    let re = c.probe_allowed_targets.unwrap();
    assert!(re.is_match("mqtt://127.0.0.1:1883"));
    assert!(!re.is_match("mqtt://127.0.0.1:1883.evil"));
    assert!(
        p("brokers:\n  - url: mqtt://h\n    probes: []\n")
            .unwrap()
            .brokers[0]
            .probes
            .is_empty()
    );
}

#[test]
fn bridge_probes_are_read_apart_with_their_defaults() {
    let c = p("brokers:\n  - name: edge\n    url: mqtt://h\n    probes:\n      - {kind: roundtrip}\n      - {kind: bridge, to: central, topic: up/sentinel, remote_topic: site1/up/sentinel, qos: 2, interval: 2s}\n  - name: central\n    url: mqtt://c\n    probes:\n      - {kind: bridge, name: down, to: edge, topic: down/sentinel}\n").unwrap();
    let edge = &c.brokers[0];
    assert_eq!(
        edge.probes.len(),
        1,
        "the bridge probe is not a probe of the session"
    );
    let b = &edge.bridge_probes[0];
    assert_eq!(
        (b.name.as_str(), b.index, b.remote.as_str()),
        ("bridge", 1, "central")
    );
    assert_eq!(
        (b.topic.as_str(), b.remote_topic.as_str()),
        ("up/sentinel", "site1/up/sentinel")
    );
    assert_eq!(b.qos, Qos::ExactlyOnce);
    assert_eq!(b.payload_bytes, 64);
    assert_eq!(b.interval, Duration::from_secs(2));
    assert_eq!(b.timeout, Duration::from_secs(5));
    let back = &c.brokers[1].bridge_probes[0];
    assert_eq!(
        back.remote_topic, "down/sentinel",
        "remote_topic defaults to topic"
    );
    assert_eq!(back.qos, Qos::AtLeastOnce);
    let dup = p("brokers:\n  - name: a\n    url: mqtt://h\n    probes:\n      - {kind: connect, name: x}\n      - {kind: bridge, name: x, to: b, topic: t}\n  - name: b\n    url: mqtt://c\n")
        .unwrap_err()
        .to_string();
    assert!(
        dup.contains("duplicate probe name \"x\" (also probes[0])"),
        "{dup}"
    );
}

#[test]
fn tls_to_an_ipv6_literal_needs_insecure_skip_verify() {
    let e = p("brokers:\n  - url: mqtts://[::1]:8883\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("brokers[0].url")
            && e.contains("cannot verify a certificate for an IPv6 address"),
        "{e}"
    );
    let c =
        p("brokers:\n  - url: wss://[::1]:8084\n    tls: {insecure_skip_verify: true}\n").unwrap();
    assert_eq!(c.brokers[0].url.paho_uri(), "wss://[::1]:8084/mqtt");
    assert!(p("brokers:\n  - url: mqtt://[::1]\n").is_ok());
}

/// A rule file named twice, however it is spelled (the same pattern, `..`, a symlink), is
/// refused: its groups would be evaluated twice and `mqtt_sentinel_alerts` would carry
/// every alert twice with the same labels.
#[test]
fn a_rule_file_matched_twice_is_refused_by_any_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), "groups: []\n").unwrap();
    std::os::unix::fs::symlink(rules.join("a.yml"), dir.path().join("link.yml")).unwrap();
    let load = |files: &str| {
        parse(
            &format!("rules: {{files: [{files}]}}\n"),
            "t.yaml",
            dir.path(),
            &env,
        )
    };
    let a = rules.join("a.yml");
    for (files, alias) in [
        ("'rules/*.yml', rules/a.yml", String::new()),
        (
            "'rules/*.yml', rules/../rules/a.yml",
            format!(" (as {})", a.display()),
        ),
        ("'rules/*.yml', link.yml", format!(" (as {})", a.display())),
    ] {
        let err = load(files).expect_err(files);
        assert_eq!(err.path, "rules.files[1]", "{files}");
        assert!(
            err.message
                .ends_with(&format!("is matched by an earlier pattern too{alias}")),
            "{files}: {}",
            err.message
        );
    }
    assert_eq!(load("'rules/*.yml'").unwrap().rules.files, Some(vec![a]));
}
