//! alerts/: the rule file passes `promtool check rules`, every unit test file passes
//! `promtool test rules`, every alert follows the conventions and is tested firing and not
//! firing, runbook anchors exist, every healthy situation the runbook lists under "Must stay
//! quiet when" names a test group that expects silence from that alert, and the
//! PrometheusRule is generated from the rule file. `mqtt-sentinel rules check/test` must
//! agree with promtool on the same files.

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

/// Test group name → alerts it expects silence from (`exp_alerts: []`), over all test files.
fn quiet_checks_by_group() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in test_files() {
        for t in yaml(&f)["tests"].as_sequence().unwrap() {
            let group = t["name"].as_str().unwrap_or_default().to_owned();
            assert!(
                group.starts_with("fires: ") || group.starts_with("quiet: "),
                "{}: test group {group:?} is named \"fires: …\" or \"quiet: …\"",
                f.display()
            );
            let entry = out.entry(group.clone()).or_default();
            assert!(entry.is_empty(), "test group {group:?} twice");
            for c in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                if c["exp_alerts"].as_sequence().is_none_or(Vec::is_empty) {
                    entry.push(c["alertname"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    out
}

/// RUNBOOK section (lower-case anchor) → the `[group name]` references in its
/// "Must stay quiet when:" list, one `Vec` per bullet.
fn runbook_quiet_lists() -> BTreeMap<String, Vec<Vec<String>>> {
    let runbook = std::fs::read_to_string(root().join("alerts/RUNBOOK.md")).unwrap();
    let mut out = BTreeMap::new();
    for section in runbook.split("\n## ").skip(1) {
        let anchor = section.lines().next().unwrap().trim().to_lowercase();
        let Some((_, list)) = section.split_once("Must stay quiet when:\n") else {
            continue;
        };
        let list = list.split("\n\n").next().unwrap();
        let bullets: Vec<Vec<String>> = list
            .split("\n- ")
            .map(|b| {
                let b = b.replace("\n  ", " ");
                b.split('[')
                    .skip(1)
                    .filter_map(|r| r.split_once(']').map(|(name, _)| name.to_owned()))
                    .collect()
            })
            .collect();
        out.insert(anchor, bullets);
    }
    out
}

#[test]
fn every_quiet_situation_in_the_runbook_is_a_test() {
    let groups = quiet_checks_by_group();
    let lists = runbook_quiet_lists();
    for (name, r) in alerts() {
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url.rsplit('#').next().unwrap();
        let bullets = lists.get(anchor).unwrap_or_else(|| {
            panic!("{name}: RUNBOOK #{anchor} has no \"Must stay quiet when:\" list")
        });
        let mut silent = false;
        for refs in bullets {
            assert!(
                !refs.is_empty(),
                "{name}: RUNBOOK #{anchor}: a quiet situation without its [test group]"
            );
            for g in refs {
                let quiet = groups.get(g).unwrap_or_else(|| {
                    panic!("{name}: RUNBOOK #{anchor} names no test group {g:?}")
                });
                silent |= quiet.contains(&name);
            }
        }
        assert!(
            silent,
            "{name}: no test group named in RUNBOOK #{anchor} expects it to stay quiet"
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
