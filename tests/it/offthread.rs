//! The rule engine works off the runtime thread: with a rule set heavy enough that one
//! evaluation takes long, `/metrics` is answered while an evaluation is under way, not only
//! in the gaps between evaluations (issue 16, part 4).
//!
//! "During" is shown by order, not by a stopwatch: the sentinel stamps each group's
//! `lastEvaluation` (`/api/v1/rules`) with the instant its cycle began and publishes it when
//! the cycle ends. A `/metrics` request sent after cycle C began, answered before C's result
//! was published (the `/api/v1/rules` asked after the answer still shows an older
//! `lastEvaluation`), was answered during C. On the runtime thread (before this part) that
//! order is impossible: no request is served from the start of a cycle to its end.

use crate::support::{Mosquitto, Sentinel, wait_until};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Alerting rules in the heavy group, each reading every series we export: one evaluation
/// takes long (a second or so on a loaded 2-core machine, unoptimised build).
const HEAVY_RULES: usize = 1500;

/// Tries before giving up: one fails only if the request lands in the short gap between two
/// cycles or spans the end of one.
const ATTEMPTS: usize = 10;

/// Milliseconds since the epoch on the clock the sentinel stamps `lastEvaluation` with.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The heavy group's `lastEvaluation` (ms since the epoch) and `evaluationTime`; `None`
/// before its first evaluation.
fn last_evaluation(s: &Sentinel) -> Option<(i64, f64)> {
    let r = s.get("/api/v1/rules");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("rules JSON");
    let g = &v["data"]["groups"][0];
    let at = humantime::parse_rfc3339(g["lastEvaluation"].as_str()?).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Some((ms, g["evaluationTime"].as_f64().unwrap_or(0.0)))
}

#[test]
fn metrics_are_answered_during_a_heavy_evaluation() {
    let broker = Mosquitto::start();
    let tmp = tempfile::tempdir().unwrap();
    let rules_path = tmp.path().join("heavy.yml");
    let mut rules = String::from("groups:\n  - name: heavy\n    rules:\n");
    for i in 0..HEAVY_RULES {
        rules.push_str(&format!(
            "      - alert: Heavy{i}\n        expr: count({{__name__=~\".+\"}}) < 0\n"
        ));
    }
    std::fs::write(&rules_path, rules).unwrap();
    // An interval far shorter than an evaluation: cycles run back to back.
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\nrules:\n  files: [ {:?} ]\n  evaluation_interval: 50ms\n",
        broker.url(),
        rules_path.display().to_string()
    ));
    s.wait_collecting();
    wait_until(Duration::from_secs(120), "a first evaluation", || {
        last_evaluation(&s)
    });

    let mut during = None;
    for attempt in 0..ATTEMPTS {
        let sent_at = wall_ms();
        let m = s.get("/metrics");
        assert_eq!(m.status, 200);
        assert!(m.body.contains("mqtt_sentinel_rule_evaluations_total"));
        let answered = last_evaluation(&s).map(|(t, _)| t);
        // The first cycle to publish after the answer: it was under way when we asked.
        let (next, took) = wait_until(
            Duration::from_secs(120),
            "the evaluation under way to end",
            || last_evaluation(&s).filter(|(t, _)| Some(*t) != answered),
        );
        eprintln!(
            "attempt {attempt}: request at {sent_at}, cycle under way began at {next} and evaluated for {took}s"
        );
        if next < sent_at {
            during = Some(attempt);
            break;
        }
    }
    assert!(
        during.is_some(),
        "no /metrics request of {ATTEMPTS} was answered during an evaluation: \
         the engine holds up the runtime thread"
    );
}
