//! The rules engine against promtool 2.42: every unit-test file in
//! `tests/fixtures/rules/agreement/` gets the same verdict from `promtool test rules` and from
//! `mqtt-sentinel rules test`, and the verdict its name promises (`*.pass.yml` / `*.fail.yml`).
//! A failing file must fail on its assertions, not on loading.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/agreement")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn unit_test_verdicts_agree_with_promtool() {
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
        let (p_ok, p_out) = run(Command::new("promtool")
            .args(["test", "rules"])
            .arg(&name)
            .current_dir(dir()));
        let (o_ok, o_out) = run(Command::new(crate::support::sentinel::BIN)
            .args(["rules", "test"])
            .arg(&name)
            .current_dir(dir()));
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
        "groups:\n  - name: g\n    rules:\n      - alert: Quantile\n        expr: quantile(0.9, up)\n",
    )
    .unwrap();
    let (ok, out) = run(Command::new(crate::support::sentinel::BIN)
        .args(["rules", "check"])
        .arg(&f));
    assert!(!ok);
    assert!(
        out.contains("bad.yml:5:15: groups[0].rules[0].expr: group \"g\", alert \"Quantile\": could not parse expression: aggregation \"quantile\" is not supported"),
        "{out}"
    );
}
