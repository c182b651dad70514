//! alerts/: the rule file passes `promtool check rules`, every unit test file passes
//! `promtool test rules`, every alert follows the conventions and is tested firing and not
//! firing, runbook anchors exist, and the PrometheusRule is generated from the rule file.
//! `mqtt-sentinel rules check/test` must agree with promtool on the same files.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(p: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn test_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("alerts/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    v.sort();
    v
}

fn promtool(args: &[&str], files: &[PathBuf]) {
    let out = Command::new("promtool")
        .args(args)
        .args(files)
        .current_dir(root())
        .output()
        .expect("promtool is installed (Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// alertname → rule.
fn alerts() -> BTreeMap<String, Value> {
    let rules = yaml(&root().join("alerts/mqtt-sentinel.rules.yml"));
    let mut out = BTreeMap::new();
    for g in rules["groups"].as_sequence().unwrap() {
        assert!(
            g.get("labels").is_none(),
            "no group-level labels (Prometheus 2.42)"
        );
        for r in g["rules"].as_sequence().unwrap() {
            let name = r["alert"].as_str().expect("alerting rules only").to_owned();
            assert!(
                out.insert(name.clone(), r.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    out
}

#[test]
fn promtool_checks_and_tests_pass() {
    promtool(
        &["check", "rules"],
        &[PathBuf::from("alerts/mqtt-sentinel.rules.yml")],
    );
    let files = test_files();
    assert!(!files.is_empty());
    promtool(&["test", "rules"], &files);
    ours(&["check", "alerts/mqtt-sentinel.rules.yml"]);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec!["test"];
    args.extend(names.iter().map(String::as_str));
    ours(&args);
}

fn ours(args: &[&str]) {
    let out = Command::new(crate::support::sentinel::BIN)
        .arg("rules")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mqtt-sentinel rules {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alerts_follow_the_conventions() {
    let runbook = std::fs::read_to_string(root().join("alerts/RUNBOOK.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let all = alerts();
    assert!(all.len() >= 20, "{} alerts", all.len());
    for (name, r) in &all {
        assert!(
            name.starts_with("Mqtt") && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name}: CamelCase with the Mqtt prefix"
        );
        let sev = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity {sev:?}"
        );
        for a in ["summary", "description", "runbook_url"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: {a}"
            );
        }
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix("alerts/RUNBOOK.md#")
            .unwrap_or_else(|| panic!("{name}: {url}"));
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{name}: no RUNBOOK section #{anchor}"
        );
    }
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let mut fires: BTreeMap<String, usize> = BTreeMap::new();
    let mut quiet: BTreeMap<String, usize> = BTreeMap::new();
    for f in test_files() {
        for t in yaml(&f)["tests"].as_sequence().unwrap() {
            for c in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = c["alertname"].as_str().unwrap().to_owned();
                let n = c["exp_alerts"].as_sequence().map_or(0, Vec::len);
                *if n > 0 { &mut fires } else { &mut quiet }
                    .entry(name)
                    .or_default() += 1;
            }
        }
    }
    for name in alerts().keys() {
        assert!(fires.contains_key(name), "{name} is never tested firing");
        assert!(
            quiet.contains_key(name),
            "{name} is never tested staying quiet"
        );
    }
}

#[test]
fn prometheusrule_is_generated_from_the_rule_file() {
    let cr = yaml(&root().join("alerts/kubernetes/prometheusrule.yaml"));
    assert_eq!(cr["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(
        cr["spec"],
        yaml(&root().join("alerts/mqtt-sentinel.rules.yml")),
        "run scripts/gen-prometheusrule.sh"
    );
}
