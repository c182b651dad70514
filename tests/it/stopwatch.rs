//! The suite's own rule, checked on its source: no test asserts a duration and no test sleeps
//! to synchronise (README, testing). A loaded 2-core CI machine stretches every round trip,
//! detection and startup; tests check mechanisms, `scripts/bench-*` print the figures.
//!
//! A textual check, not a parser: an `assert…!(…)` whose arguments mention a clock or a
//! duration (`elapsed()`, `Instant`, `as_millis`, `as_secs`, `Duration::from…`, `mul_f64`)
//! is flagged; so is any read of a histogram's `_seconds_sum` (it only serves a mean latency),
//! and a `thread::sleep` in a test unless the six lines above it say why it is "not a
//! synchronisation" (a pacing or an observation window).

use std::path::{Path, PathBuf};

/// Words that make an assertion a stopwatch.
const CLOCK: [&str; 6] = [
    "elapsed()",
    "Instant",
    "as_millis",
    "as_secs",
    "Duration::from",
    "mul_f64",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(line, text)` of every `assert!`/`assert_eq!`/`assert_ne!` call, its arguments included
/// (parentheses balanced; string contents are not special-cased, which is fine for a lint).
fn assertions(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = src[from..].find("assert").map(|i| i + from) {
        let rest = &src[at..];
        let Some(open) = rest.find('(') else { break };
        let head = &rest[..open];
        from = at + open;
        if !["assert!", "assert_eq!", "assert_ne!"].contains(&head.trim()) {
            continue;
        }
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let line = src[..at].matches('\n').count() + 1;
        out.push((line, rest[..end].to_owned()));
    }
    out
}

#[test]
fn no_test_asserts_a_duration_or_sleeps_to_synchronise() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut bad = Vec::new();
    for f in &files {
        if f.ends_with("stopwatch.rs") {
            continue;
        }
        let src = std::fs::read_to_string(f).expect("read test source");
        let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for (line, text) in assertions(&src) {
            if let Some(w) = CLOCK.iter().find(|w| text.contains(*w)) {
                bad.push(format!("{name}:{line}: asserts on a clock ({w})"));
            }
        }
        let lines: Vec<&str> = src.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains(concat!("_seconds", "_sum")) {
                bad.push(format!("{name}:{}: reads a latency sum", i + 1));
            }
            let why = lines[i.saturating_sub(6)..i].join(" ");
            // support/ implements waiting (wait_until) and faults (the proxy's stall)
            if l.contains("thread::sleep(")
                && !name.starts_with("support")
                && !why.contains("not a synchronisation")
            {
                bad.push(format!("{name}:{}: sleeps to synchronise", i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "wait for a condition (wait_until, wait_scrape) and check the mechanism; put figures in scripts/bench-*:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let src = "fn t() {\n    let t = Instant::now();\n    assert!(\n        t.elapsed() < Duration::from_secs(1),\n        \"slow\"\n    );\n    assert_eq!(x, 1);\n}\n";
    let found = assertions(src);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, 3);
    assert!(found[0].1.contains("elapsed()"));
    assert_eq!(found[1].1, "assert_eq!(x, 1)");
}
