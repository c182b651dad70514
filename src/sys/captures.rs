//! Every real `$SYS` capture in `tests/fixtures/sys/captures/` replayed through `auto`: the
//! right profile, zero parse errors, a bounded series count, and the exported series equal
//! to the reviewed `<capture>.expected` file beside it (`UPDATE_CAPTURES=1` rewrites those).

use super::*;
use crate::sys::profile::Action;
use crate::sys::profile::ProfileSet;
use crate::sys::profile::tests::sys_cfg;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Undo the capture format's escapes: `\\`, `\t`, `\n`, `\r`, `\xNN`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'\\' => out.push(b'\\'),
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

pub(super) struct Replay {
    pub profile: Option<String>,
    pub counters: IngestCounters,
    pub snapshot: SysSnapshot,
    /// Outcome of every message when the picked profile is set, not auto-detected.
    pub outcomes: Vec<Outcome>,
    pub topics: usize,
    /// Per profile topic pattern (or `(unmapped)`) and outcome: how many messages, and the
    /// families the pattern's entries write.
    pub by_pattern: BTreeMap<(String, String), (usize, BTreeSet<String>)>,
}

/// Replays one capture, spreading its lines over the 62 s it lasted: once through `auto`,
/// then once with the profile `auto` picked, which must end in the same series.
pub(super) fn replay(text: &str) -> Replay {
    let t0 = UNIX_EPOCH + Duration::from_secs(1_796_072_000);
    let lines: Vec<(&str, Vec<u8>, SystemTime)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (topic, payload) = line.split_once('\t').unwrap_or((line, ""));
            let n = text.lines().count() as u64;
            let at = t0 + Duration::from_millis(62_000 * i as u64 / n);
            (topic, unescape(payload), at)
        })
        .collect();
    let run = |profile: &str| {
        let store = SysStore::new("b");
        let counters = IngestCounters::default();
        let mut ing = Ingest::new(&sys_cfg(profile), store.clone(), counters.clone());
        let outcomes: Vec<Outcome> = lines
            .iter()
            .map(|(t, p, at)| ing.handle(t, p, *at))
            .collect();
        (
            ing.profile().map(str::to_owned),
            counters,
            store.snapshot(),
            outcomes,
        )
    };
    let (profile, counters, snapshot, _) = run("auto");
    let picked = profile.clone().unwrap_or_default();
    let (_, fixed_counters, fixed, outcomes) = run(&picked);
    assert_eq!(fixed.series, snapshot.series, "auto and {picked} disagree");
    assert_eq!(fixed.info, snapshot.info, "auto and {picked} disagree");
    assert_eq!(
        fixed_counters.parse_errors.get(),
        counters.parse_errors.get()
    );
    let topics = lines
        .iter()
        .map(|(t, ..)| *t)
        .collect::<BTreeSet<_>>()
        .len();
    let set = ProfileSet::builtin();
    let p = set.get(&picked).expect("picked profile exists");
    let mut by_pattern: BTreeMap<(String, String), (usize, BTreeSet<String>)> = BTreeMap::new();
    for ((t, ..), o) in lines.iter().zip(&outcomes) {
        let rel = t.strip_prefix("$SYS/").unwrap_or(t);
        let (pattern, families) = match p.lookup(rel) {
            Some(m) => (
                m.topic.to_owned(),
                m.entries
                    .iter()
                    .filter_map(|e| match &e.action {
                        Action::Value { family, .. } => Some(family.name.to_string()),
                        Action::Version => Some(profile::INFO.to_owned()),
                        Action::Ignore => None,
                    })
                    .collect(),
            ),
            None => ("(unmapped)".to_owned(), BTreeSet::new()),
        };
        let kind = match o {
            Outcome::Invalid(e) => format!("invalid: {e}"),
            other => format!("{other:?}").to_lowercase(),
        };
        let slot = by_pattern.entry((pattern, kind)).or_default();
        slot.0 += 1;
        slot.1.extend(families);
    }
    Replay {
        profile,
        counters,
        snapshot,
        outcomes,
        topics,
        by_pattern,
    }
}

/// Each capture and the profile `auto` must pick for it.
const CAPTURES: &[(&str, &str)] = &[
    ("mosquitto-1.6.15", "mosquitto"),
    ("mosquitto-2.0.11-debian", "mosquitto"),
    ("mosquitto-2.1.2", "mosquitto"),
    ("aedes-1.2.0+aedes-stats-4.0.0", "aedes"),
    ("nanomq-0.24.1", "nanomq"),
    ("nanomq-0.25.3", "nanomq"),
    ("rmqtt-0.24.0", "rmqtt"),
];

/// The replay as reviewed text: what happened to the messages, then every exported series.
fn render(name: &str, r: &Replay) -> String {
    let count = |f: fn(&Outcome) -> bool| r.outcomes.iter().filter(|o| f(o)).count();
    let typed: BTreeSet<&str> = r
        .snapshot
        .series
        .keys()
        .map(|(f, _)| &*f.name)
        .filter(|n| *n != profile::SYS_VALUE)
        .collect();
    let mut out = format!(
        "# capture: {name}.sys.tsv\n# profile: {}\n# messages {}, distinct topics {}: stored {}, ignored {}, refused {}, unmapped text {}, parse errors {}, dropped {}\n# typed families {}, mqtt_broker_sys_value series {}\n",
        r.profile.as_deref().unwrap_or("-"),
        r.outcomes.len(),
        r.topics,
        count(|o| *o == Outcome::Stored),
        count(|o| *o == Outcome::Ignored),
        count(|o| *o == Outcome::Refused),
        count(|o| *o == Outcome::UnmappedText),
        count(|o| matches!(o, Outcome::Invalid(_))),
        count(|o| *o == Outcome::Dropped),
        typed.len(),
        r.snapshot
            .series
            .keys()
            .filter(|(f, _)| &*f.name == profile::SYS_VALUE)
            .count(),
    );
    for ((pattern, kind), (n, families)) in &r.by_pattern {
        let f: Vec<&str> = families.iter().map(String::as_str).collect();
        let to = if f.is_empty() {
            String::new()
        } else {
            format!(" -> {}", f.join(", "))
        };
        out.push_str(&format!("# {pattern}: {n} {kind}{to}\n"));
    }
    for ((f, labels), v) in &r.snapshot.series {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        out.push_str(&format!("{}{{{}}} {v}\n", f.name, l.join(",")));
    }
    if let Some(i) = &r.snapshot.info {
        out.push_str(&format!(
            "mqtt_broker_info{{implementation={:?},version={:?},profile={:?}}}\n",
            i.implementation, i.version, i.profile
        ));
    }
    out
}

#[test]
fn every_real_capture_replays_with_its_profile_and_no_parse_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sys/captures");
    let update = std::env::var_os("UPDATE_CAPTURES").is_some();
    for (name, want) in CAPTURES {
        let text = std::fs::read_to_string(dir.join(format!("{name}.sys.tsv"))).unwrap();
        let r = replay(&text);
        assert_eq!(r.profile.as_deref(), Some(*want), "{name}");
        assert_eq!(r.counters.parse_errors.get(), 0, "{name}");
        assert!(
            !r.outcomes.iter().any(|o| matches!(o, Outcome::Invalid(_))),
            "{name}"
        );
        assert_eq!(r.counters.series_dropped.get(), 0, "{name}");
        // bounded: per-client topics never become series
        assert!(
            r.snapshot.series.len() <= 60,
            "{name}: {} series",
            r.snapshot.series.len()
        );
        let info = r
            .snapshot
            .info
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no info"));
        assert!(!info.implementation.is_empty(), "{name}");
        // a session that starts after the broker's retained version expired (mosquitto
        // < 2.0.16 expires retained $SYS after 60 s) still recognises the broker
        let late: String = text
            .lines()
            .filter(|l| !l.contains("/version\t"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            replay(&late).profile.as_deref(),
            Some(*want),
            "{name} without its version"
        );
        let got = render(name, &r);
        let path = dir.join(format!("{name}.expected"));
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_CAPTURES=1 writes it)", path.display()));
        assert_eq!(
            got,
            want,
            "{name}: the replay differs from {}",
            path.display()
        );
    }
}
