use super::*;
use crate::config::{Receiver, Route, Secret, SecretSource};
use crate::labels::Labels;

fn receiver(name: &str, kind: ReceiverKind, send_resolved: bool) -> Receiver {
    Receiver {
        name: name.into(),
        kind,
        url: SecretSource::Inline(Secret::new("http://127.0.0.1:9/")),
        headers: vec![],
        send_resolved,
        signing_key: None,
        routing_key: Some(SecretSource::Inline(Secret::new("rk"))),
        timeout: Duration::from_secs(1),
        max_attempts: 1,
    }
}

fn dispatcher(kind: ReceiverKind) -> Dispatcher {
    let cfg = NotifyConfig {
        receivers: vec![receiver("r", kind, true)],
        route: Some(Route {
            receiver: 0,
            matchers: vec![],
            group_by: vec!["alertname".into()],
            continue_: false,
            routes: vec![],
        }),
        ..NotifyConfig::default()
    };
    Dispatcher::new(
        cfg,
        [("cluster".to_string(), "eu".to_string())].into(),
        "http://sentinel".into(),
        Duration::from_secs(15),
    )
}

/// An alert the rule engine would hold: firing, or resolved at `resolved_at`.
struct Held {
    labels: Labels,
    annotations: BTreeMap<String, String>,
    resolved_at: Option<i64>,
}

impl Held {
    fn view(&self) -> Alert<'_> {
        Alert {
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: Some(60_000),
            resolved_at: self.resolved_at,
        }
    }
}

fn alert(broker: &str, resolved_at: Option<i64>) -> Held {
    Held {
        labels: Labels::from_pairs([("alertname", "MqttDown"), ("broker", broker)]),
        annotations: [("summary".to_string(), format!("{broker} down"))].into(),
        resolved_at,
    }
}

fn bodies(out: &Outbox) -> Vec<serde_json::Value> {
    out.iter()
        .map(|(_, j)| serde_json::from_slice(&j.body).expect("json"))
        .collect()
}

#[test]
fn webhook_groups_notifies_changes_repeats_and_resolves() {
    let mut d = dispatcher(ReceiverKind::Webhook);
    let a = alert("a", None);
    let b = alert("b", None);
    let out = d.dispatch(&[a.view()], 100_000);
    let v = &bodies(&out)[0];
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["groupKey"], r#"{}:{alertname="MqttDown"}"#);
    assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["alerts"][0]["startsAt"], "1970-01-01T00:01:00.000Z");
    assert_eq!(v["alerts"][0]["labels"]["cluster"], "eu");
    assert_eq!(v["commonAnnotations"]["summary"], "a down");
    assert!(
        d.dispatch(&[a.view()], 115_000).is_empty(),
        "nothing changed"
    );
    let out = d.dispatch(&[a.view(), b.view()], 130_000);
    assert_eq!(bodies(&out)[0]["alerts"].as_array().map(Vec::len), Some(2));
    assert!(
        d.dispatch(&[a.view(), b.view()], 130_000 + 4 * 3_600_000 - 1)
            .is_empty()
    );
    assert_eq!(
        d.dispatch(&[a.view(), b.view()], 130_000 + 4 * 3_600_000)
            .len(),
        1,
        "repeat_interval"
    );
    let ra = alert("a", Some(20_000_000));
    let rb = alert("b", Some(20_000_000));
    let v = &bodies(&d.dispatch(&[ra.view(), rb.view()], 20_000_000))[0];
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["alerts"][0]["endsAt"], "1970-01-01T05:33:20.000Z");
    assert!(
        d.dispatch(&[ra.view(), rb.view()], 20_015_000).is_empty(),
        "resolved is sent once"
    );
}

#[test]
fn alertmanager_resends_and_sets_ends_at() {
    let mut d = dispatcher(ReceiverKind::Alertmanager);
    let a = alert("a", None);
    let v = &bodies(&d.dispatch(&[a.view()], 100_000))[0];
    // endsAt = now + 4 × max(resend_delay 1m, eval interval 15s)
    assert_eq!(v[0]["endsAt"], rfc3339(Some(100_000 + 240_000)));
    assert!(d.dispatch(&[a.view()], 160_000).is_empty());
    assert_eq!(
        d.dispatch(&[a.view()], 160_001).len(),
        1,
        "re-sent after resend_delay"
    );
    let r = alert("a", Some(170_000));
    let v = &bodies(&d.dispatch(&[r.view()], 170_000))[0];
    assert_eq!(v[0]["endsAt"], rfc3339(Some(170_000)));
}

#[test]
fn pagerduty_dedups_by_fingerprint() {
    let mut d = dispatcher(ReceiverKind::Pagerduty);
    let a = alert("a", None);
    let v = &bodies(&d.dispatch(&[a.view()], 100_000))[0];
    assert_eq!(v["event_action"], "trigger");
    assert_eq!(v["routing_key"], "rk");
    let fp = v["dedup_key"].clone();
    assert!(d.dispatch(&[a.view()], 200_000).is_empty());
    let r = alert("a", Some(300_000));
    let v = &bodies(&d.dispatch(&[r.view()], 300_000))[0];
    assert_eq!(
        (v["event_action"].as_str(), &v["dedup_key"]),
        (Some("resolve"), &fp)
    );
}

#[test]
fn fingerprint_matches_alertmanager() {
    // Alertmanager (prometheus/common model.LabelSet.Fingerprint) for {alertname="test"}.
    let l: BTreeMap<String, String> = [("alertname".to_string(), "test".to_string())].into();
    assert_eq!(
        fingerprint(&l),
        format!("{:016x}", {
            let mut h: u64 = 14_695_981_039_346_656_037;
            for b in b"alertname\xfftest\xff" {
                h ^= u64::from(*b);
                h = h.wrapping_mul(1_099_511_628_211);
            }
            h
        })
    );
    assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
}

#[test]
fn chat_payloads() {
    let b = Batch {
        group_key: "{}:{}".into(),
        group_labels: [("alertname".to_string(), "MqttDown".to_string())].into(),
        alerts: vec![AlertMsg {
            status: Status::Firing,
            labels: [("alertname".to_string(), "MqttDown".to_string())].into(),
            annotations: [("summary".to_string(), "x".repeat(300))].into(),
            starts_at: Some(0),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "0".into(),
        }],
    };
    assert_eq!(slack::body(&b)["text"], "[FIRING:1] alertname=MqttDown");
    assert_eq!(
        teams::body(&b)["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    let title = discord::body(&b)["embeds"][0]["title"]
        .as_str()
        .map(|s| s.chars().count());
    assert_eq!(title, Some(256));
}

#[test]
fn retry_after_seconds_and_http_dates() {
    use super::queue::retry_after;
    use std::time::{Duration, UNIX_EPOCH};
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
    assert_eq!(
        retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
        Some(Duration::from_secs(30))
    );
    // RFC 850 and asctime forms are HTTP-dates too.
    assert_eq!(
        retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        retry_after("Sun Nov  6 08:49:38 1994", now),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
        Some(Duration::ZERO),
        "a date in the past retries now"
    );
    assert_eq!(retry_after("soon", now), None);
    assert_eq!(retry_after("-5", now), None);
}

/// Alertmanager's group key starts with the route path, so the same labels routed through two
/// sibling routes (`continue: true`) form two groups.
#[test]
fn group_keys_carry_the_route_path() {
    use crate::config::parse_matcher;
    let child = |m: &str, cont: bool| Route {
        receiver: 0,
        matchers: vec![parse_matcher(m).expect("matcher")],
        group_by: vec!["alertname".into()],
        continue_: cont,
        routes: vec![],
    };
    let cfg = NotifyConfig {
        receivers: vec![receiver("r", ReceiverKind::Webhook, true)],
        route: Some(Route {
            receiver: 0,
            matchers: vec![],
            group_by: vec!["alertname".into()],
            continue_: false,
            routes: vec![
                child(r#"broker=~"a|b""#, true),
                child("alertname=MqttDown", false),
            ],
        }),
        ..NotifyConfig::default()
    };
    let mut d = Dispatcher::new(cfg, BTreeMap::new(), String::new(), Duration::from_secs(15));
    let a = alert("a", None);
    let mut keys: Vec<String> = bodies(&d.dispatch(&[a.view()], 100_000))
        .iter()
        .map(|v| v["groupKey"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            r#"{}/{alertname="MqttDown"}:{alertname="MqttDown"}"#,
            r#"{}/{broker=~"a|b"}:{alertname="MqttDown"}"#,
        ]
    );
}

/// The whole webhook body, byte for byte: Alertmanager's fields in its order.
#[test]
fn webhook_body_is_alertmanagers_exactly() {
    let mut d = dispatcher(ReceiverKind::Webhook);
    let a = alert("a", None);
    let out = d.dispatch(&[a.view()], 100_000);
    let fp = fingerprint(
        &[
            ("alertname".to_string(), "MqttDown".to_string()),
            ("broker".to_string(), "a".to_string()),
            ("cluster".to_string(), "eu".to_string()),
        ]
        .into(),
    );
    let want = format!(
        concat!(
            r#"{{"receiver":"r","status":"firing","alerts":[{{"status":"firing","#,
            r#""labels":{{"alertname":"MqttDown","broker":"a","cluster":"eu"}},"#,
            r#""annotations":{{"summary":"a down"}},"startsAt":"1970-01-01T00:01:00.000Z","#,
            r#""endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://sentinel","#,
            r#""fingerprint":"{fp}"}}],"groupLabels":{{"alertname":"MqttDown"}},"#,
            r#""commonLabels":{{"alertname":"MqttDown","broker":"a","cluster":"eu"}},"#,
            r#""commonAnnotations":{{"summary":"a down"}},"externalURL":"http://sentinel","#,
            r#""version":"4","groupKey":"{{}}:{{alertname=\"MqttDown\"}}","truncatedAlerts":0}}"#
        ),
        fp = fp
    );
    assert_eq!(String::from_utf8_lossy(&out[0].1.body), want);
}
