//! The rules engine against promtool 2.42: every unit-test file in
//! `tests/fixtures/rules/agreement/` gets the same verdict from `promtool test rules` and from
//! `mqtt-sentinel rules test`, and the verdict its name promises (`*.pass.yml` / `*.fail.yml`).
//! A failing file must fail on its assertions, not on loading, and with the words its
//! `# Fails with: …` lines name, if any; what each tool writes to stdout and to stderr is
//! the same, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/agreement")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let (ok, stdout, stderr) = run_split(cmd);
    (ok, format!("{stdout}{stderr}"))
}

/// Success, stdout and stderr.
fn run_split(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `text` with the two series of each many-to-many error (`…operation: [A, B];many-to-many…`)
/// in sorted order. promtool's order there is not stable from run to run: it names the series
/// in the order its test storage created them, and its `load` command keeps a test's
/// `input_series` in a Go map, whose iteration order is random (seen: 3 of 12 runs of
/// `manytomany.fail.yml` say `[i="1", i="2"]`, 9 say the reverse). Ours is stable; the
/// words and both series must still be promtool's.
fn pair_order_free(text: &str) -> String {
    let re =
        regex::Regex::new(r"(operation: \[)(\{[^}]*\}), (\{[^}]*\})(\];many-to-many)").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let (a, b) = (&c[2], &c[3]);
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        format!("{}{a}, {b}{}", &c[1], &c[4])
    })
    .into_owned()
}

#[test]
fn unit_test_verdicts_agree_with_promtool() {
    assert_eq!(
        pair_order_free(r#"operation: [{i="2"}, {i="1"}];many-to-many"#),
        r#"operation: [{i="1"}, {i="2"}];many-to-many"#
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".pass.yml") || n.ends_with(".fail.yml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    let mut cases = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let want = name.ends_with(".pass.yml");
        let (p_ok, p_stdout, p_stderr) = run_split(
            Command::new("promtool")
                .args(["test", "rules"])
                .arg(&name)
                .current_dir(dir()),
        );
        let (o_ok, o_stdout, o_stderr) = run_split(
            Command::new(crate::support::sentinel::BIN)
                .args(["rules", "test"])
                .arg(&name)
                .current_dir(dir()),
        );
        let (p_out, o_out) = (
            format!("{p_stdout}{p_stderr}"),
            format!("{o_stdout}{o_stderr}"),
        );
        assert_eq!(o_stdout, p_stdout, "stdout of {name}");
        assert_eq!(
            pair_order_free(&o_stderr),
            pair_order_free(&p_stderr),
            "stderr of {name}"
        );
        assert_eq!(p_ok, want, "promtool on {name}:\n{p_out}");
        assert_eq!(
            o_ok, want,
            "mqtt-sentinel on {name}:\n{o_out}\npromtool said:\n{p_out}"
        );
        if !want {
            assert!(
                ["alertname:", "expr:", "rule:"]
                    .iter()
                    .any(|k| o_out.contains(k)),
                "{name} must fail on an assertion:\n{o_out}"
            );
        }
        let text = std::fs::read_to_string(f).unwrap();
        // A fixture may name the words both tools must fail with.
        for want in text
            .lines()
            .filter_map(|l| l.strip_prefix("# Fails with: "))
        {
            assert!(
                p_out.contains(want),
                "promtool on {name}, not {want:?}:\n{p_out}"
            );
            assert!(
                o_out.contains(want),
                "mqtt-sentinel on {name}, not {want:?}:\n{o_out}"
            );
        }
        cases += text.matches("eval_time:").count();
    }
    assert!(cases >= 20, "only {cases} cases");
}

#[test]
fn rules_check_names_file_line_group_and_construct() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.yml");
    std::fs::write(
        &f,
        "groups:\n  - name: g\n    rules:\n      - alert: Count\n        expr: histogram_count(up)\n",
    )
    .unwrap();
    let (ok, out) = run(Command::new(crate::support::sentinel::BIN)
        .args(["rules", "check"])
        .arg(&f));
    assert!(!ok);
    assert!(
        out.contains("bad.yml: 5:15: group \"g\", rule 1, \"Count\": could not parse expression: function \"histogram_count\" is not supported"),
        "{out}"
    );
}

/// Each expression of `tests/fixtures/rules/parse-errors/corpus.yml` (all refused by promtool
/// 2.42) in its own rule file: `rules check` prints the parse error's line as `promtool check
/// rules` does (`e1.yml: 5:15: group "g", rule 1, "r": could not parse expression: 1:7: parse
/// error: …`), byte for byte, except for the expressions `known-differences.yml` lists, which must
/// still differ (so that list stays honest). And each expression of `valid.yml` (all accepted
/// by promtool) loads, but those listed as `refused` there, which must still be refused. Four
/// processes in all (one per tool and list, every file on one command line).
#[test]
fn parse_errors_read_as_promtools() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/parse-errors");
    let read = |name: &str| std::fs::read_to_string(fixtures.join(name)).unwrap();
    let corpus: Vec<String> = serde_yaml::from_str(&read("corpus.yml")).unwrap();
    let known: Vec<std::collections::BTreeMap<String, String>> =
        serde_yaml::from_str(&read("known-differences.yml")).unwrap();
    let known: Vec<&str> = known.iter().map(|k| k["expr"].as_str()).collect();
    for k in &known {
        assert!(
            corpus.iter().any(|e| e == k),
            "known difference not in the corpus: {k:?}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..corpus.len()).map(|i| format!("e{i}.yml")).collect();
    for (f, e) in files.iter().zip(&corpus) {
        let rule = format!(
            "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        );
        std::fs::write(tmp.path().join(f), rule).unwrap();
    }
    // The whole `eN.yml: 5:15: group "g", rule 1, "r": could not parse expression: …` line,
    // by N: promtool's framing too.
    let messages = |out: &str, n: usize| {
        let mut by_file = vec![None; n];
        for line in out.lines() {
            let Some(rest) = line.strip_prefix('e') else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let (Ok(i), true) = (
                digits.parse::<usize>(),
                line.contains(": could not parse expression: "),
            ) else {
                continue;
            };
            by_file[i] = Some(line.to_string());
        }
        by_file
    };
    let (_, p_out) = run(Command::new("promtool")
        .args(["check", "rules"])
        .args(&files)
        .current_dir(tmp.path()));
    let (o_ok, o_out) = run(Command::new(crate::support::sentinel::BIN)
        .args(["rules", "check"])
        .args(&files)
        .current_dir(tmp.path()));
    assert!(!o_ok);
    let (p, o) = (messages(&p_out, files.len()), messages(&o_out, files.len()));
    let mut agree = 0;
    let mut wrong = Vec::new();
    for (i, e) in corpus.iter().enumerate() {
        let want = p[i]
            .as_ref()
            .unwrap_or_else(|| panic!("promtool accepts {e:?}: not for this corpus"));
        let same = o[i].as_ref() == Some(want);
        agree += usize::from(same);
        if same == known.contains(&e.as_str()) {
            wrong.push(format!("{e:?}\n  promtool: {want}\n  ours:     {:?}", o[i]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} expressions against the lists (differ but not known, or known but agreeing):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(agree, corpus.len() - known.len());
    assert!(corpus.len() >= 600, "corpus of {}", corpus.len());

    #[derive(serde::Deserialize)]
    struct Valid {
        accepted: Vec<String>,
        refused: Vec<std::collections::BTreeMap<String, String>>,
    }
    let valid: Valid = serde_yaml::from_str(&read("valid.yml")).unwrap();
    let refused: Vec<&str> = valid.refused.iter().map(|k| k["expr"].as_str()).collect();
    let all: Vec<&str> = valid
        .accepted
        .iter()
        .map(String::as_str)
        .chain(refused.iter().copied())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..all.len()).map(|i| format!("e{i}.yml")).collect();
    for (f, e) in files.iter().zip(&all) {
        let rule = format!(
            "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        );
        std::fs::write(tmp.path().join(f), rule).unwrap();
    }
    let (p_ok, p_out) = run(Command::new("promtool")
        .args(["check", "rules"])
        .args(&files)
        .current_dir(tmp.path()));
    assert!(p_ok, "promtool refuses some of valid.yml:\n{p_out}");
    let (_, o_out) = run(Command::new(crate::support::sentinel::BIN)
        .args(["rules", "check"])
        .args(&files)
        .current_dir(tmp.path()));
    // Our refusals, by file (`eN.yml:…` lines that are not `SUCCESS`).
    let mut ours = vec![None; all.len()];
    for line in o_out.lines().filter(|l| !l.contains(": SUCCESS: ")) {
        let digits: String = line
            .strip_prefix('e')
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(i) = digits.parse::<usize>() {
            ours[i] = Some(line.to_string());
        }
    }
    let wrong: Vec<String> = all
        .iter()
        .zip(&ours)
        .filter(|(e, o)| o.is_some() != refused.contains(e))
        .map(|(e, o)| format!("{e:?}: {o:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "valid.yml: refused but not listed, or listed but loading:\n{}",
        wrong.join("\n")
    );
    assert!(valid.accepted.len() >= 800, "{}", valid.accepted.len());
}

/// `rules test` with a rule file whose expression does not parse: the same stdout and stderr
/// as `promtool test rules`, byte for byte (promtool's framing of the rule file's error).
#[test]
fn rules_test_reports_a_rule_file_that_does_not_parse_as_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.yml"),
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: foo * * bar\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("t.yml"),
        "rule_files: [bad.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series: []\n    promql_expr_test:\n      - expr: up\n        eval_time: 1m\n        exp_samples: []\n",
    )
    .unwrap();
    let (p_ok, p_stdout, p_stderr) = run_split(
        Command::new("promtool")
            .args(["test", "rules", "t.yml"])
            .current_dir(tmp.path()),
    );
    let (o_ok, o_stdout, o_stderr) = run_split(
        Command::new(crate::support::sentinel::BIN)
            .args(["rules", "test", "t.yml"])
            .current_dir(tmp.path()),
    );
    assert!(!p_ok && !o_ok);
    assert!(
        p_stderr.contains("bad.yml: 5:15: group \"g\", rule 1, \"r\": could not parse expression: 1:7: parse error: unexpected <op:*>"),
        "{p_stderr}"
    );
    assert_eq!(o_stdout, p_stdout);
    assert_eq!(o_stderr, p_stderr);
}

/// stdout, stderr and exit code of `promtool <args>` and `mqtt-sentinel rules <args>` (the
/// same subcommand and files), run in `dir`.
fn both(dir: &Path, check_or_test: &str, files: &[&str]) -> [(String, String, Option<i32>); 2] {
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(dir).output().expect("runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    };
    let (p_args, o_args) = match check_or_test {
        "check" => (["check", "rules"], ["rules", "check"]),
        _ => (["test", "rules"], ["rules", "test"]),
    };
    [
        run(Command::new("promtool").args(p_args).args(files)),
        run(Command::new(crate::support::sentinel::BIN)
            .args(o_args)
            .args(files)),
    ]
}

/// `rules check` prints what `promtool check rules` 2.42 prints, byte for byte on stdout and
/// on stderr, with the same exit code: `Checking <file>`, `  SUCCESS: N rules found` or
/// `  FAILED:` and EVERY error of the file (structure, names, fields, expressions,
/// templates; `tests/fixtures/rules/check/`), a blank line after each file, the next file
/// checked after a failing one, the duplicate-rule lint (exit 0). A missing path: promtool's
/// words with our name, nothing checked.
#[test]
fn rules_check_prints_what_promtool_prints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/check");
    let runs: [&[&str]; 10] = [
        &["ok.yml"],
        &["positions.yml"],
        &["exprs.yml"],
        &["structure.yml"],
        &["fields.yml"],
        &["duplicates.yml"],
        &["duplicates-labels.yml"],
        &["ok.yml", "exprs.yml", "ok.yml"],
        &["duplicates.yml", "ok.yml", "structure.yml", "exprs.yml"],
        &["ok.yml", "duplicates-labels.yml"],
    ];
    for files in runs {
        let [p, o] = both(&dir, "check", files);
        assert_eq!(o.0, p.0, "stdout of {files:?}");
        assert_eq!(o.1, p.1, "stderr of {files:?}");
        assert_eq!(o.2, p.2, "exit code of {files:?}");
    }
    // The files say what they are for: every error listed, lint warnings exit 0.
    let [p, _] = both(&dir, "check", &["exprs.yml"]);
    assert_eq!(
        p.1.lines().filter(|l| l.starts_with("exprs.yml: ")).count(),
        4
    );
    let [p, _] = both(&dir, "check", &["duplicates.yml"]);
    assert!(
        p.1.contains("lint error 1 duplicate rule(s) found."),
        "{}",
        p.1
    );
    assert_eq!(p.2, Some(0));

    let [p, o] = both(&dir, "check", &["missing.yml", "ok.yml"]);
    assert_eq!((o.0.as_str(), p.0.as_str()), ("", ""));
    assert_eq!(o.1, p.1.replacen("promtool", "mqtt-sentinel", 1));
    assert_eq!(o.2, p.2);
}

/// `rules test` with a rule file of several errors lists them all, as promtool does.
#[test]
fn rules_test_lists_every_error_of_a_rule_file_as_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/check");
    std::fs::copy(src.join("exprs.yml"), tmp.path().join("exprs.yml")).unwrap();
    std::fs::write(
        tmp.path().join("t.yml"),
        "rule_files: [exprs.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series: []\n    promql_expr_test:\n      - expr: up\n        eval_time: 1m\n        exp_samples: []\n",
    )
    .unwrap();
    let [p, o] = both(tmp.path(), "test", &["t.yml"]);
    assert_eq!(
        p.1.lines().filter(|l| l.starts_with("exprs.yml: ")).count(),
        4
    );
    assert_eq!(o, p);
}

/// Parse errors inside a unit-test file, as `promtool test rules` 2.42 prints them: the
/// `input_series` description (`series` and `values` read as one text: a selector that does
/// not parse, a matcher other than `=`, values that are no values) and a `promql_expr_test`
/// expression that does not parse. One test file per case, all on one command line per tool;
/// stdout, stderr and exit code byte for byte.
#[test]
fn rules_test_input_series_errors_read_as_promtools() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"foo{a="b""#, "1 2", "up"),
        (r#"foo{a="b""#, "", "up"),
        ("foo{a=b}", "1 2", "up"),
        (r#"foo{a=~"b"}"#, "1", "up"),
        (r#"foo{a!="b"}"#, "1", "up"),
        (r#"foo{"a"="b"}"#, "1", "up"),
        ("rate(foo[5m])", "1", "up"),
        ("foo bar", "1", "up"),
        ("", "1", "up"),
        ("", "", "up"),
        ("foo", "abc", "up"),
        ("foo", "1 2 x", "up"),
        ("foo", "1x", "up"),
        (r#"foo{a="b"} 1+1x10"#, "2x", "up"),
        ("foo", "1x-3", "up"),
        ("foo", "1+1y10", "up"),
        ("foo", "5 1+2x3y", "up"),
        ("foo", "1 2 3", "sum(foo"),
        ("foo", "1 2 3", "foo{a=}"),
        // Valid: the series' own values run on into `values`, and every value form.
        (r#"foo{a="b"} 1+1x10"#, "1", "foo"),
        (
            r#"foo:bar_1{a="x\"}y",}"#,
            "1 stale 2 _ _x3 1-1x2 Inf -Inf NaN +Inf 1e3 -1e-3+2e2x2",
            "foo:bar_1",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (i, (series, values, expr)) in cases.iter().enumerate() {
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let f = format!("t{i}.yml");
        std::fs::write(
            tmp.path().join(&f),
            format!(
                "rule_files: []\ntests:\n  - interval: 1m\n    input_series:\n      - series: {}\n        values: {}\n    promql_expr_test:\n      - expr: {}\n        eval_time: 1m\n        exp_samples: []\n",
                q(series),
                q(values),
                q(expr)
            ),
        )
        .unwrap();
        files.push(f);
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let [p, o] = both(tmp.path(), "test", &files);
    // Most cases are refused, by name of the error.
    assert!(p.1.matches("parse error: ").count() >= 17, "{}", p.1);
    assert_eq!(o.0, p.0, "stdout");
    assert_eq!(o.1, p.1, "stderr");
    assert_eq!(o.2, p.2, "exit code");
}

use crate::support::daemon::Daemon;
use crate::support::scrape::get;
use crate::support::sink::Sink;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::time::Duration;

/// mqtt-sentinel watching `broker` with `rules` (a rule file's text) and `notify` (YAML).
fn sentinel_with(broker: &Mosquitto, dir: &Path, rules: &str, notify: &str) -> Sentinel {
    let rules_path = dir.join("rules.yml");
    std::fs::write(&rules_path, rules).unwrap();
    Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\nrules:\n  files: [ {:?} ]\n  evaluation_interval: 250ms\n  external_labels: {{ cluster: test }}\n{notify}",
        broker.url(),
        rules_path.display().to_string()
    ))
}

#[test]
fn webhook_gets_firing_then_resolved_when_the_broker_stops_and_returns() {
    let mut broker = Mosquitto::start();
    let sink = Sink::start(&[], false);
    let tmp = tempfile::tempdir().unwrap();
    // The spec's example key: the test checks the signature with it below.
    std::fs::write(
        tmp.path().join("secret"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    )
    .unwrap();
    let s = sentinel_with(
        &broker,
        tmp.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: BrokerDown\n        expr: mqtt_up == 0\n        for: 1s\n        labels: { severity: critical }\n        annotations: { summary: '{{ $labels.broker }} is down' }\n",
        &format!(
            "notify:\n  receivers:\n    - {{ name: ops, type: webhook, url: {:?}, signing_secret_file: {:?} }}\n",
            sink.url("/hook"),
            tmp.path().join("secret").display().to_string()
        ),
    );
    s.wait_collecting();
    broker.kill();
    let firing = wait_until(Duration::from_secs(20), "a firing notification", || {
        sink.requests()
            .into_iter()
            .find(|r| r.json()["status"] == "firing")
    });
    let v = firing.json();
    assert_eq!(firing.path, "/hook");
    assert_eq!(v["version"], "4");
    assert_eq!(v["receiver"], "ops");
    assert_eq!(v["groupKey"], r#"{}:{alertname="BrokerDown"}"#);
    let a = &v["alerts"][0];
    assert_eq!(a["labels"]["broker"], "m");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["cluster"], "test", "external labels are added");
    assert_eq!(a["annotations"]["summary"], "m is down");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
    // Standard Webhooks signature over id.timestamp.body.
    let key =
        mqtt_sentinel::notify::signing::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
    let ts: i64 = firing.headers["webhook-timestamp"].parse().unwrap();
    let want =
        mqtt_sentinel::notify::signing::sign(&key, &firing.headers["webhook-id"], ts, &firing.body);
    assert_eq!(firing.headers["webhook-signature"], want);
    // While firing: the API and our ALERTS series show it.
    let api: serde_json::Value = serde_json::from_str(&s.get("/api/v1/alerts").body).unwrap();
    assert_eq!(api["data"]["alerts"][0]["state"], "firing", "{api}");
    let sc = s.wait_scrape(Duration::from_secs(30), "mqtt_sentinel_alerts", |sc| {
        sc.value(
            "mqtt_sentinel_alerts",
            &[("alertname", "BrokerDown"), ("alertstate", "firing")],
        ) == Some(1.0)
    });
    drop(sc);
    broker.restart();
    let resolved = wait_until(Duration::from_secs(30), "a resolved notification", || {
        sink.requests()
            .into_iter()
            .find(|r| r.json()["status"] == "resolved")
    });
    let r = resolved.json();
    assert_eq!(r["alerts"][0]["status"], "resolved");
    assert_ne!(r["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(r["alerts"][0]["fingerprint"], a["fingerprint"]);
    let rules: serde_json::Value = serde_json::from_str(&s.get("/api/v1/rules").body).unwrap();
    assert_eq!(
        rules["data"]["groups"][0]["rules"][0]["health"], "ok",
        "{rules}"
    );
    assert_eq!(
        sink.requests()
            .iter()
            .filter(|r| r.json()["status"] == "firing")
            .count(),
        1,
        "one firing notification"
    );
}

#[test]
fn a_500_is_retried_with_the_same_webhook_id() {
    let broker = Mosquitto::start();
    let sink = Sink::start(&[500, 503], false);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("secret"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap();
    let s = sentinel_with(
        &broker,
        tmp.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
        &format!(
            "notify:\n  receivers:\n    - {{ name: ops, type: webhook, url: {:?}, signing_secret_file: {:?} }}\n",
            sink.url("/hook"),
            tmp.path().join("secret").display().to_string()
        ),
    );
    s.wait_scrape(Duration::from_secs(20), "one success after retries", |sc| {
        sc.value(
            "mqtt_sentinel_notifications_total",
            &[("receiver", "ops"), ("result", "success")],
        ) == Some(1.0)
    });
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3, "500, 503, then 200");
    assert!(
        reqs.iter()
            .all(|r| r.headers["webhook-id"] == reqs[0].headers["webhook-id"])
    );
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
}

#[test]
fn a_hanging_receiver_does_not_stop_probes_or_evaluation() {
    let broker = Mosquitto::start();
    let sink = Sink::start(&[], true);
    let tmp = tempfile::tempdir().unwrap();
    let s = sentinel_with(
        &broker,
        tmp.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
        &format!(
            "notify:\n  receivers:\n    - {{ name: ops, type: webhook, url: {:?}, timeout: 60s }}\n",
            sink.url("/hook")
        ),
    );
    wait_until(Duration::from_secs(30), "the notification to hang", || {
        (!sink.requests().is_empty()).then_some(())
    });
    let before = s.wait_collecting();
    let sent = |sc: &crate::support::scrape::Scrape| {
        sc.find("mqtt_probe_sent_total", &[("broker", "m")])
            .iter()
            .map(|x| x.value)
            .sum::<f64>()
    };
    let evals = |sc: &crate::support::scrape::Scrape| {
        sc.find("mqtt_sentinel_rule_evaluations_total", &[])
            .iter()
            .map(|x| x.value)
            .sum::<f64>()
    };
    let (p0, e0) = (sent(&before), evals(&before));
    s.wait_scrape(
        Duration::from_secs(30),
        "probes and evaluations continue",
        |sc| sent(sc) >= p0 + 2.0 && evals(sc) >= e0 + 4.0,
    );
    assert_eq!(sink.requests().len(), 1, "still the one hanging delivery");
}

/// A real Alertmanager (Debian prometheus-alertmanager, loopback) shows the alert we push to
/// its `/api/v2/alerts` with our labels, annotations and a future `endsAt`, and drops it once
/// we send it resolved.
#[test]
fn a_real_alertmanager_shows_our_alert_and_its_resolution() {
    let mut broker = Mosquitto::start();
    let am = Daemon::start(
        "prometheus-alertmanager",
        "prometheus-alertmanager",
        "/-/ready",
        |dir, addr| {
            let conf = dir.join("alertmanager.yml");
            std::fs::write(
                &conf,
                "route: {receiver: blackhole, group_wait: 1s}\nreceivers: [{name: blackhole}]\n",
            )
            .unwrap();
            vec![
                format!("--config.file={}", conf.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                // No gossip: one loopback instance, nothing else bound.
                "--cluster.listen-address=".into(),
            ]
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = sentinel_with(
        &broker,
        tmp.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: BrokerUp\n        expr: mqtt_up == 1\n        labels: { severity: info }\n        annotations: { summary: '{{ $labels.broker }} answers' }\n",
        &format!(
            "notify:\n  receivers:\n    - {{ name: am, type: alertmanager, url: 'http://{}' }}\n",
            am.addr
        ),
    );
    s.wait_collecting();
    let alerts = |filter: &str| -> Vec<serde_json::Value> {
        let r = get(am.addr, &format!("/api/v2/alerts{filter}"), &[]).unwrap();
        serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let ours = wait_until(Duration::from_secs(20), "our alert in Alertmanager", || {
        alerts("")
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "BrokerUp")
    });
    assert_eq!(ours["labels"]["broker"], "m", "{ours}");
    assert_eq!(ours["labels"]["severity"], "info");
    assert_eq!(ours["labels"]["cluster"], "test", "external labels");
    assert_eq!(ours["annotations"]["summary"], "m answers");
    assert_eq!(ours["status"]["state"], "active", "{ours}");
    assert_eq!(ours["receivers"][0]["name"], "blackhole");
    // endsAt = now + 4 x max(resend_delay 1m, evaluation interval): ~4 minutes ahead.
    let ends = ours["endsAt"].as_str().unwrap_or_default().to_string();
    let starts = ours["startsAt"].as_str().unwrap_or_default().to_string();
    assert!(ends > starts, "endsAt {ends} after startsAt {starts}");
    broker.kill();
    wait_until(
        Duration::from_secs(30),
        "Alertmanager sees it resolved",
        || {
            alerts("?active=true")
                .iter()
                .all(|a| a["labels"]["alertname"] != "BrokerUp")
                .then_some(())
        },
    );
    assert!(am.log().contains("Listening"), "{}", am.log());
}
