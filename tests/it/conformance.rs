//! Prometheus' own PromQL conformance data (v2.42.0 `promql/testdata/*.test`, beside the
//! clone in `../shared/`) converted to promtool unit tests by `scripts/promql-conformance.py`
//! and run under real `promtool test rules` and `mqtt-sentinel rules test`: no case we accept
//! gets a verdict other than promtool's, unless listed with its reason in
//! `tests/fixtures/rules/conformance-expected-disagreements.txt`. Refusals (constructs we do
//! not evaluate yet) are allowed and counted in the printed table. Where both tools fail a
//! case, our failure text is promtool's, unless listed there with its reason too.

use std::path::Path;
use std::process::Command;

#[test]
fn upstream_promql_cases_get_promtools_verdict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = root.join("../shared/prometheus-2.42-promql-testdata");
    assert!(
        testdata.join("functions.test").is_file(),
        "the conformance data is missing: {}",
        testdata.display()
    );
    let out = Command::new("python3")
        .arg(root.join("scripts/promql-conformance.py"))
        .arg("--check")
        .arg("--verbose")
        .arg("--testdata")
        .arg(&testdata)
        .arg("--out")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("promql-conformance"))
        .arg("--sentinel")
        .arg(crate::support::sentinel::BIN)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The table's total line: cases, skipped, refused, unstable, stable, agree, disagree, ….
    let total: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("total"))
        .expect("a total line")
        .split_whitespace()
        .map(|n| n.parse().expect("a count"))
        .collect();
    let (cases, stable, agree) = (total[0], total[4], total[5]);
    assert!(cases >= 560, "only {cases} upstream cases read:\n{stdout}");
    assert!(
        stable >= 370 && agree + total[6] == stable,
        "too few cases compared:\n{stdout}"
    );
    // Where both fail, the failure reads as promtool's, byte for byte (issue 17, class 4).
    assert_eq!(
        total[9], 0,
        "failure text differs from promtool's:\n{stdout}"
    );
}
