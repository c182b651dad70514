//! Cost of one rule-engine cycle at scale: 500 rules over 50 000 series with 1 h of 15 s
//! history (issue 4). One cycle is exactly what `Engine::run` does every evaluation interval:
//! encode our registry as OpenMetrics, parse it back, append the snapshot to the history,
//! evaluate every group (alert state machine included), decide what a webhook receiver is
//! sent (the bodies are built; with no delivery queue they go nowhere) and trim. Groups are
//! evaluated side by side and the snapshot is parsed while it is encoded, as in the service,
//! so the cycle is wall time on every CPU the process may use; the CPU time is printed too.
//!
//!   cargo bench --bench rules [-- --series N --rules N --cycles N]
//!
//! Prints the median and worst cycle, split into snapshot (encode, parse and append; with two
//! CPUs the parsing overlaps the encoding) and evaluation, and the memory held, against
//! references measured in the same run:
//!   - the snapshot's floor: prometheus-client encoding the same registry on its own;
//!   - time: one plain pass over every sample held, as f64s in one flat Vec (the floor for
//!     "look at every sample once"; rules read far fewer, so a good engine stays near it);
//!   - memory: 16 B per sample, the size of the samples uncompressed.
//!
//! Targets from issue 4: <= 50 ms per cycle, <= 64 MiB resident.
//!
//! Synthetic data, deterministic: 500 metric names x 100 series (labels broker, client,
//! instance); even names are counters growing by 0..100 per step, odd names integer gauges
//! doing a bounded random walk. Rules mix instant thresholds, rate/irate/increase over 5 m and
//! 1 h, avg_over_time over 1 h, deriv/predict_linear and `sum by`. Time is simulated (no
//! sleeps); the loop is bounded by `--cycles`.

use mqtt_sentinel::config::RulesConfig;
use mqtt_sentinel::exposition::{Format, encode};
use mqtt_sentinel::metrics::RulesMetrics;
use mqtt_sentinel::rules::file;
use mqtt_sentinel::rules::manager::{Engine, SharedGroups};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

type L = Vec<(String, String)>;
const STEP_MS: i64 = 15_000;
const HISTORY_STEPS: usize = 240; // 1 h of 15 s steps

struct Args {
    series: usize,
    rules: usize,
    cycles: usize,
    /// `None`: run every mix, each in its own process (so RSS figures do not mix).
    mix: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        series: 50_000,
        rules: 500,
        cycles: 40,
        mix: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let val = argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        if argv[i] == "--mix" {
            a.mix = argv.get(i + 1).cloned();
            i += 2;
            continue;
        }
        match (argv[i].as_str(), val) {
            ("--series", Some(v)) => a.series = v.max(100),
            ("--rules", Some(v)) => a.rules = v.max(1),
            ("--cycles", Some(v)) => a.cycles = v.clamp(1, 1000),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rules_yaml(names: usize, rules: usize, mix: &str) -> String {
    let mut y = String::from("groups:\n");
    for r in 0..rules {
        if r % 50 == 0 {
            y += &format!("  - name: bench{}\n    rules:\n", r / 50);
        }
        let k = r % names;
        let (expr, dur) = if mix == "all-1h" {
            all_1h(k)
        } else {
            typical(k)
        };
        y += &format!(
            "      - alert: Bench{r}\n        expr: {expr}\n        for: {dur}\n        labels: {{severity: warning}}\n        annotations: {{summary: \"{{{{ $labels.broker }}}} at {{{{ $value | humanize }}}}\"}}\n"
        );
    }
    y
}

/// Every metric name is read over 1 h every cycle: the whole history is decoded each time.
fn all_1h(k: usize) -> (String, &'static str) {
    if k.is_multiple_of(2) {
        let m = format!("bench_m{k}_total");
        match (k / 2) % 4 {
            0 => (format!("rate({m}[5m]) > 1.2 * rate({m}[1h])"), "1m"),
            1 => (
                format!(
                    "sum by (broker) (increase({m}[1h])) > 1.1 * sum by (broker) (increase({m}[5m])) * 12"
                ),
                "5m",
            ),
            2 => (
                format!("resets({m}[1h]) > 0 or irate({m}{{broker=~\"b[0-2]\"}}[1m]) > 6"),
                "0s",
            ),
            _ => (format!("sum by (broker) (rate({m}[1h])) > 660"), "0s"),
        }
    } else {
        let m = format!("bench_g{k}");
        match (k / 2) % 4 {
            0 => (format!("{m} > 1.5 * avg_over_time({m}[1h])"), "2m"),
            1 => (format!("avg_over_time({m}[1h]) > 700"), "0s"),
            2 => (format!("predict_linear({m}[1h], 3600) > 2000"), "5m"),
            _ => (format!("max by (broker) (deriv({m}[1h])) > 0.01"), "0s"),
        }
    }
}

/// Shaped like alerts/mqtt-sentinel.rules.yml: 6 in 10 rules are instant thresholds or
/// ratios, 3 in 10 read 5-15 min ranges, 1 in 10 compares against a 1 h baseline.
fn typical(k: usize) -> (String, &'static str) {
    let counter = k.is_multiple_of(2);
    let m = if counter {
        format!("bench_m{k}_total")
    } else {
        format!("bench_g{k}")
    };
    match (k / 2) % 10 {
        0..=2 if !counter => (format!("{m} > 950"), "2m"),
        0..=2 => (format!("{m} > 20000"), "0s"),
        3..=5 => (
            format!("{m} / on (broker, client) group_left {m} > 1.5 or {m}{{broker=\"b0\"}} < 0"),
            "1m",
        ),
        6..=8 if counter => (
            format!(
                "sum by (broker) (increase({m}[{}m])) > 50000",
                5 * ((k / 2) % 10 - 5)
            ),
            "5m",
        ),
        6..=8 => (format!("deriv({m}[15m]) > 0.05"), "10m"),
        _ if counter => (format!("rate({m}[5m]) > 1.5 * rate({m}[1h])"), "15m"),
        _ => (format!("{m} > 1.5 * avg_over_time({m}[1h])"), "15m"),
    }
}

enum Metric {
    Counter(Family<L, Counter<f64, AtomicU64>>),
    Gauge(Family<L, Gauge<f64, AtomicU64>>),
}

fn main() {
    let a = args();
    let Some(mix) = a.mix.clone() else {
        // Each mix in a fresh process: RSS never shrinks, so one process cannot measure two.
        let exe = std::env::args().next().unwrap_or_default();
        let rest: Vec<String> = std::env::args().skip(1).collect();
        for mix in ["typical", "all-1h"] {
            let ok = std::process::Command::new(&exe)
                .args(&rest)
                .args(["--mix", mix])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("mix {mix} failed");
                std::process::exit(1);
            }
        }
        return;
    };
    if mix != "typical" && mix != "all-1h" {
        eprintln!("--mix must be typical or all-1h");
        std::process::exit(2);
    }
    let per_name = 100;
    let names = a.series / per_name;
    let rss0 = status_kib("VmRSS:");

    let groups = match file::parse(&rules_yaml(names, a.rules, &mix), "bench.rules.yml") {
        Ok(g) => g,
        Err(e) => {
            eprintln!("bench rules do not load: {e}");
            std::process::exit(1);
        }
    };
    let cfg = RulesConfig {
        files: Some(vec![]),
        evaluation_interval: Duration::from_millis(STEP_MS as u64),
        state_file: None,
        external_labels: BTreeMap::new(),
        external_url: String::new(),
    };
    let shared = SharedGroups::fresh(groups, cfg.evaluation_interval);
    let mut reg = Registry::default();
    let rm = RulesMetrics::register(&mut reg);
    // One webhook receiver, as a deployment that pages has: every evaluation then also
    // decides what to send (the bodies are built; with no queue they go nowhere).
    let notify = match mqtt_sentinel::config::parse(
        "notify:\n  receivers:\n    - { name: ops, type: webhook, url: \"http://127.0.0.1:9/hook\" }\n",
        "bench.yml",
        std::path::Path::new("."),
        &|_| None,
    ) {
        Ok(c) => c.notify,
        Err(e) => {
            eprintln!("bench notify config: {e}");
            std::process::exit(1);
        }
    };
    let mut engine = Engine::new(&cfg, notify, shared.clone(), None, rm);

    // Our registry, as the live engine sees it.
    let mut metrics = Vec::with_capacity(names);
    for k in 0..names {
        let m = if k % 2 == 0 {
            let f = Family::<L, Counter<f64, AtomicU64>>::default();
            reg.register(format!("bench_m{k}"), "bench counter", f.clone());
            Metric::Counter(f)
        } else {
            let f = Family::<L, Gauge<f64, AtomicU64>>::default();
            reg.register(format!("bench_g{k}"), "bench gauge", f.clone());
            Metric::Gauge(f)
        };
        metrics.push(m);
    }
    let labels: Vec<L> = (0..per_name)
        .map(|j| {
            vec![
                ("broker".to_string(), format!("b{}", j % 5)),
                ("client".to_string(), format!("client-{j:04}")),
                ("instance".to_string(), "127.0.0.1:1883".to_string()),
            ]
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let step = |rng: &mut Rng| {
        for m in &metrics {
            for l in &labels {
                let r = rng.next();
                match m {
                    Metric::Counter(f) => {
                        f.get_or_create(l).inc_by((r % 100) as f64);
                    }
                    Metric::Gauge(f) => {
                        let g = f.get_or_create(l);
                        let v = g.get() + (r % 21) as f64 - 10.0;
                        g.set(v.clamp(0.0, 1000.0));
                    }
                }
            }
        }
    };

    // The registry holding 50 000 series is part of the process whatever the engine does.
    step(&mut rng);
    let rss_registry = status_kib("VmRSS:");

    // Fill 1 h of history, evaluating as the live engine does (warms the state machine).
    let t0 = 1_700_000_000_000i64;
    let mut now = t0;
    let fill = Instant::now();
    for _ in 0..HISTORY_STEPS {
        step(&mut rng);
        if engine.snapshot(&reg, now).is_err() {
            eprintln!("snapshot failed");
            std::process::exit(1);
        }
        engine.evaluate(now);
        now += STEP_MS;
    }
    let fill = fill.elapsed();

    // Measured cycles, history full.
    let cpu0 = cpu_seconds();
    let mut snap = Vec::new();
    let mut encode_alone = Vec::new();
    let mut eval = Vec::new();
    let mut total = Vec::new();
    for _ in 0..a.cycles {
        step(&mut rng);
        let c0 = Instant::now();
        if engine.snapshot(&reg, now).is_err() {
            eprintln!("snapshot failed");
            std::process::exit(1);
        }
        let c2 = Instant::now();
        engine.evaluate(now);
        let c3 = Instant::now();
        snap.push(c2 - c0);
        eval.push(c3 - c2);
        total.push(c3 - c0);
        now += STEP_MS;
    }

    let cpu = cpu_seconds() - cpu0;
    // Reference: prometheus-client's text encoding of the same registry on its own.
    for _ in 0..7 {
        let e0 = Instant::now();
        black_box(encode(&reg, Format::OpenMetrics).unwrap_or_default());
        encode_alone.push(e0.elapsed());
    }
    let (held, alerts, failures) = {
        let g = shared.lock();
        let alerts: usize = g
            .iter()
            .flat_map(|g| g.rules.iter())
            .map(|r| r.active.len())
            .sum();
        let failures = g
            .iter()
            .flat_map(|g| g.rules.iter())
            .filter(|r| r.last_error.is_some())
            .count();
        (engine.history_samples(), alerts, failures)
    };
    let chunk_bytes = engine.history_bytes();
    let rss = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");

    // References, same run.
    let flat: Vec<f64> = (0..held).map(|i| i as f64).collect();
    let sweep = median(
        &(0..7)
            .map(|_| {
                let t = Instant::now();
                black_box(flat.iter().sum::<f64>());
                t.elapsed()
            })
            .collect::<Vec<_>>(),
    );
    drop(flat);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "rules bench, mix {mix}: {} rules, {} series ({} names x {per_name}), {} samples held, {} cycles after a {:.1} s fill",
        a.rules,
        names * per_name,
        names,
        held,
        a.cycles,
        fill.as_secs_f64()
    );
    println!("  alerts active {alerts}, rules failing {failures}");
    println!(
        "  cycle         median {:7.2} ms   worst {:7.2} ms   (target <= 50 ms)",
        ms(median(&total)),
        ms(max(&total))
    );
    println!(
        "    snapshot    median {:7.2} ms   worst {:7.2} ms   (encode + parse + append; encoding alone {:.2} ms)",
        ms(median(&snap)),
        ms(max(&snap)),
        ms(median(&encode_alone))
    );
    println!(
        "    evaluate    median {:7.2} ms   worst {:7.2} ms",
        ms(median(&eval)),
        ms(max(&eval))
    );
    println!(
        "    CPU time    mean   {:7.2} ms per cycle, all threads ({} CPUs; groups are evaluated side by side)",
        cpu * 1e3 / a.cycles as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  reference: one pass over {held} f64s {:.2} ms -> cycle/reference {:.1}x",
        ms(sweep),
        median(&total).as_secs_f64() / sweep.as_secs_f64().max(1e-9)
    );
    let grown = rss.saturating_sub(rss_registry) * 1024;
    println!(
        "  memory: RSS {:.1} MiB (peak {:.1} MiB; empty process {:.1} MiB, + registry of the series {:.1} MiB); engine's share {:.1} MiB (target <= 64 MiB)",
        mib(rss),
        mib(hwm),
        mib(rss0),
        mib(rss_registry),
        mib(rss.saturating_sub(rss_registry))
    );
    println!(
        "  memory: compressed samples {:.1} MiB = {:.2} B per sample",
        chunk_bytes as f64 / 1048576.0,
        chunk_bytes as f64 / held.max(1) as f64
    );
    println!(
        "  memory: engine {:.2} B per sample held incl. labels, index and alerts (uncompressed samples alone: 16 B) -> {:.2}x",
        grown as f64 / held.max(1) as f64,
        grown as f64 / (16.0 * held.max(1) as f64)
    );
}

/// User + system CPU time of this process, all threads (`/proc/self/stat`, clock ticks of
/// 10 ms: only meaningful summed over many cycles).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}
