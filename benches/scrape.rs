//! Cost of the collector's two hot paths, in-process, measured against a reference taken in
//! the same run: ingesting one `$SYS` message (vs. parsing its payload alone), and encoding
//! `/metrics` as Prometheus text 0.0.4 (vs. prometheus-client's own OpenMetrics encoding).
//!
//!   cargo bench --bench scrape
//!
//! Input: the real mosquitto 2.0.11 `$SYS` capture in tests/fixtures. Loops are bounded.

use mqtt_sentinel::config::SysConfig;
use mqtt_sentinel::exposition::{Format, encode};
use mqtt_sentinel::metrics::Metrics;
use mqtt_sentinel::sys::profile::ProfileSet;
use mqtt_sentinel::sys::{Ingest, SysCollector, SysStore, parse};
use prometheus_client::registry::Registry;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

const CAPTURE: &str = include_str!("../tests/fixtures/mosquitto-2.0.11-sys.tsv");

/// Median of 7 timed runs of `iters` calls, per call.
fn time(iters: u32, mut f: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .collect();
    runs.sort();
    runs[3]
}

fn main() {
    let lines: Vec<(&str, &str)> = CAPTURE.lines().filter_map(|l| l.split_once('\t')).collect();
    let n = lines.len() as u32;

    let mut reg = Registry::default();
    let metrics = Metrics::register(&mut reg);
    let b = metrics.broker("local", &mqtt_sentinel::config::Capacity::default());
    let store = SysStore::new("local");
    let cfg = SysConfig {
        enabled: true,
        topic: "$SYS/#".into(),
        profile: "mosquitto".into(),
        max_series: 500,
        profiles: std::sync::Arc::new(ProfileSet::builtin()),
    };
    let mut ingest = Ingest::new(&cfg, store.clone(), b.ingest.clone());
    let now = SystemTime::now();

    let floor = time(2_000, || {
        for (_, p) in &lines {
            let _ = black_box(parse::number(black_box(p.as_bytes())));
        }
    }) / n;
    let full = time(2_000, || {
        for (t, p) in &lines {
            black_box(ingest.handle(t, p.as_bytes(), now));
        }
    }) / n;
    println!(
        "ingest one $SYS message: {full:?} (parse alone: {floor:?}, ratio {:.1}x)",
        full.as_secs_f64() / floor.as_secs_f64()
    );

    reg.register_collector(Box::new(SysCollector::new(vec![store])));
    let om = time(2_000, || {
        black_box(encode(&reg, Format::OpenMetrics).ok());
    });
    let text = time(2_000, || {
        black_box(encode(&reg, Format::Text).ok());
    });
    let bytes = encode(&reg, Format::Text).map(|s| s.len()).unwrap_or(0);
    println!(
        "encode /metrics ({bytes} bytes): text 0.0.4 {text:?}, OpenMetrics {om:?} (ratio {:.2}x)",
        text.as_secs_f64() / om.as_secs_f64()
    );
}
