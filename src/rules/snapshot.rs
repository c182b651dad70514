//! Reading our own exposition into the history, as a Prometheus scrape of ourselves would:
//! the OpenMetrics text of our registry is parsed back into samples (only series some rule
//! can read are kept; series that vanished get a stale marker). Two fast paths, each with the
//! test that proves it stores what the plain path stores: the line cache (a registry encodes
//! its series in the same order every time, so a line is matched against the last snapshot's
//! key instead of parsed) and the encoder thread (the text is parsed in blocks while another
//! thread still encodes it).

use super::labels::{Labels, METRIC_NAME};
use super::storage::{Storage, stale_nan};
use crate::exposition::{self, Format};
use prometheus_client::registry::Registry;

/// Splits a sample line into its series key (`name{labels}`, exactly as written) and its
/// value token; `None` for comments, blank and malformed lines.
fn split_sample(line: &str) -> Option<(&str, &str)> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let b = line.as_bytes();
    let mut i = line.find(['{', ' '])?;
    if b[i] == b'{' {
        let mut quoted = false;
        loop {
            i += 1;
            match (b.get(i)?, quoted) {
                (b'\\', true) => i += 1,
                (b'"', _) => quoted = !quoted,
                (b'}', false) => break,
                _ => {}
            }
        }
        i += 1;
    }
    let value = line[i..].split_whitespace().next()?;
    Some((&line[..i], value))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        x => x.parse().ok(),
    }
}

/// `name{a="b",…}` → labels (with `__name__`).
fn parse_key(key: &str) -> Option<Labels> {
    let (name, rest) = match key.find('{') {
        Some(i) => (&key[..i], key[i + 1..].strip_suffix('}')?),
        None => (key, ""),
    };
    let mut pairs = vec![(METRIC_NAME.to_string(), name.to_string())];
    let mut chars = rest.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let eq = rest[start..].find('=')? + start;
        let label = rest[start..eq].to_string();
        while chars.peek().is_some_and(|(i, _)| *i <= eq) {
            chars.next();
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '"' => break,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        pairs.push((label, value));
    }
    Some(Labels::new(pairs))
}

/// How many lines of the last snapshot a line may be found ahead of where the previous one
/// was (series that vanished in between) before it counts as new.
const LOOK_AHEAD: usize = 8;

/// Text blocks handed from the encoding thread to the parsing one.
const BLOCK: usize = 64 * 1024;

/// The sample lines of the last snapshot, in order: every key in one buffer (compared in
/// sequence, so the next one is already in cache) and the series id of each (`None` for
/// series no rule reads).
#[derive(Debug, Default)]
pub(super) struct LineCache {
    keys: String,
    /// Where each key ends in `keys`, and its series.
    lines: Vec<(u32, Option<u32>)>,
}

impl LineCache {
    fn key(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.lines[i - 1].0 as usize,
        };
        &self.keys[start..self.lines[i].0 as usize]
    }

    fn push(&mut self, key: &str, id: Option<u32>) {
        self.keys.push_str(key);
        self.lines.push((self.keys.len() as u32, id));
    }
}

/// One snapshot being ingested.
struct Feed {
    old: LineCache,
    /// The cache for the next snapshot. While every line so far is the one at the same
    /// position of `old` (`in_step`), it is not written: it would be a copy of `old`'s start.
    new: LineCache,
    in_step: Option<usize>,
    /// The line of `old` the next line most likely matches.
    next: usize,
    seen: Vec<u32>,
}

impl Feed {
    /// Records that this snapshot's next line has `key` (line `j` of the last snapshot, when
    /// known) and series `id`.
    fn record(&mut self, j: Option<usize>, key: &str, id: Option<u32>) {
        if let Some(n) = self.in_step {
            if j == Some(n) {
                self.in_step = Some(n + 1);
                return;
            }
            self.in_step = None;
            let end = n.checked_sub(1).map_or(0, |i| self.old.lines[i].0 as usize);
            // About as many lines as last time: room for them at once.
            self.new
                .keys
                .reserve_exact(self.old.keys.len() + self.old.keys.len() / 16);
            self.new
                .lines
                .reserve_exact(self.old.lines.len() + self.old.lines.len() / 16);
            self.new.keys.push_str(&self.old.keys[..end]);
            self.new.lines.extend_from_slice(&self.old.lines[..n]);
        }
        self.new.push(key, id);
    }

    /// The cache for the next snapshot.
    fn into_cache(mut self) -> LineCache {
        match self.in_step {
            None => {
                let mut new = self.new;
                if new.keys.capacity() > new.keys.len() + new.keys.len() / 8 {
                    new.keys.shrink_to_fit();
                    new.lines.shrink_to_fit();
                }
                new
            }
            Some(n) => {
                // The same lines as last time, perhaps fewer at the end.
                let end = n.checked_sub(1).map_or(0, |i| self.old.lines[i].0 as usize);
                self.old.keys.truncate(end);
                self.old.lines.truncate(n);
                self.old
            }
        }
    }
}

/// A `fmt::Write` that sends what is written in blocks of about [`BLOCK`] bytes.
struct Blocks {
    tx: std::sync::mpsc::SyncSender<String>,
    buf: String,
}

impl Blocks {
    fn send(&mut self) -> std::fmt::Result {
        let block = std::mem::replace(&mut self.buf, String::with_capacity(BLOCK));
        self.tx.send(block).map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for Blocks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= BLOCK {
            self.send()?;
        }
        Ok(())
    }
}

/// Our own registry read back into a [`Storage`], one snapshot after another: Prometheus'
/// scrape loop, in-process. It remembers the last snapshot (its lines and the series they
/// fed) so that the next one matches lines by key and marks what vanished stale; the manager
/// owns one and says, by metric name, which series are worth keeping (`wanted`).
#[derive(Default)]
pub struct Scraper {
    /// The last snapshot's sample lines: their keys and series ids.
    lines: LineCache,
    /// The storage generation the ids in `lines` belong to.
    lines_generation: u64,
    /// Ids ingested by the last snapshot (the others are recording-rule output).
    present: Vec<u32>,
}

impl Scraper {
    /// Appends one snapshot of exposition text at `now` (ms) to `storage`: only series whose
    /// metric name is `wanted` are kept; series of the last snapshot missing from this one
    /// get a stale marker.
    pub fn ingest(
        &mut self,
        storage: &mut Storage,
        wanted: &impl Fn(&str) -> bool,
        text: &str,
        now: i64,
    ) {
        let mut feed = self.feed(storage);
        for line in text.lines() {
            ingest_line(storage, wanted, &mut feed, line, now);
        }
        self.finish(storage, feed, now);
    }

    /// Snapshots `registry` into `storage`: [`Scraper::ingest`] of its OpenMetrics text, but
    /// with two CPUs (`workers` ≥ 2) the text is parsed on this thread while another still
    /// encodes it, in blocks, so the cycle pays for about the slower of the two rather than
    /// both. An encoding error leaves no stale markers (only a whole snapshot may set them).
    pub fn snapshot(
        &mut self,
        storage: &mut Storage,
        wanted: &impl Fn(&str) -> bool,
        registry: &Registry,
        now: i64,
        workers: usize,
    ) -> Result<(), std::fmt::Error> {
        if workers < 2 {
            let text = exposition::encode(registry, Format::OpenMetrics)?;
            self.ingest(storage, wanted, &text, now);
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(8);
        std::thread::scope(|scope| {
            let encoder = scope.spawn(move || {
                let mut w = Blocks {
                    tx,
                    buf: String::with_capacity(BLOCK),
                };
                prometheus_client::encoding::text::encode(&mut w, registry)?;
                w.send()
            });
            let mut feed = self.feed(storage);
            let mut carry = String::new();
            for block in rx {
                let mut rest = block.as_str();
                if !carry.is_empty() {
                    let Some(nl) = rest.find('\n') else {
                        carry.push_str(rest);
                        continue;
                    };
                    carry.push_str(&rest[..nl]);
                    ingest_line(storage, wanted, &mut feed, &carry, now);
                    carry.clear();
                    rest = &rest[nl + 1..];
                }
                let complete = rest.rfind('\n').map_or(0, |i| i + 1);
                for line in rest[..complete].lines() {
                    ingest_line(storage, wanted, &mut feed, line, now);
                }
                carry.push_str(&rest[complete..]);
            }
            // A registry's text ends with "# EOF\n"; anything left is a last line.
            if !carry.is_empty() {
                ingest_line(storage, wanted, &mut feed, &carry, now);
            }
            let encoded = encoder.join().unwrap_or(Err(std::fmt::Error));
            // Only a whole snapshot may mark vanished series stale.
            if encoded.is_ok() {
                self.finish(storage, feed, now);
            } else {
                self.lines = feed.into_cache();
            }
            encoded
        })
    }

    /// Forgets the last snapshot's lines (which of them no rule reads may change on reload);
    /// stale marking still knows what the last snapshot held.
    pub fn forget_lines(&mut self) {
        self.lines = LineCache::default();
    }

    /// How many lines the last snapshot had (read or not).
    pub fn lines(&self) -> usize {
        self.lines.lines.len()
    }

    fn feed(&mut self, storage: &Storage) -> Feed {
        let generation = storage.generation();
        let mut old = std::mem::take(&mut self.lines);
        if generation != self.lines_generation {
            // Ids were reused: what the cache says about them may be wrong.
            old = LineCache::default();
            self.lines_generation = generation;
        }
        Feed {
            new: LineCache::default(),
            old,
            in_step: Some(0),
            next: 0,
            seen: Vec::with_capacity(self.present.len()),
        }
    }

    /// Marks the series the last snapshot had and this one lacks stale, as a scrape does.
    fn finish(&mut self, storage: &mut Storage, mut feed: Feed, now: i64) {
        for &id in &self.present {
            if storage.newest(id).is_some_and(|t| t < now) {
                storage.append_id(id, now, stale_nan());
            }
        }
        self.present = std::mem::take(&mut feed.seen);
        self.lines = feed.into_cache();
    }
}

/// One sample line of a snapshot into `storage` (see [`Scraper::ingest`]).
fn ingest_line(
    storage: &mut Storage,
    wanted: &impl Fn(&str) -> bool,
    feed: &mut Feed,
    line: &str,
    now: i64,
) {
    if line.is_empty() || line.starts_with('#') {
        return;
    }
    // A registry encodes its series in the same order every time: the key is almost
    // always the next one of the last snapshot, followed by one space and the value (no
    // scan through quoted label values, no parsing). A few lines further on means series
    // vanished in between; not found at all, a new series (the old position stays).
    let known = (feed.next..(feed.next + LOOK_AHEAD + 1).min(feed.old.lines.len())).find_map(|j| {
        let key = feed.old.key(j);
        let rest = line.strip_prefix(key)?.strip_prefix(' ')?;
        Some((j, key.len(), rest))
    });
    let (j, key, id, value) = match known {
        Some((j, len, rest)) => {
            feed.next = j + 1;
            if let Some(&(_, Some(ahead))) = feed.old.lines.get(j + LOOK_AHEAD) {
                storage.prefetch_append(ahead);
            }
            let value = rest.split(' ').next().unwrap_or("");
            (Some(j), &line[..len], feed.old.lines[j].1, value)
        }
        None => {
            let Some((key, value)) = split_sample(line) else {
                return;
            };
            let id = parse_key(key).and_then(|l| wanted(l.name()).then(|| storage.id(&l)));
            (None, key, id, value)
        }
    };
    feed.record(j, key, id);
    if let (Some(id), Some(v)) = (id, parse_value(value)) {
        storage.append_id(id, now, v);
        feed.seen.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::storage::is_stale;

    #[test]
    fn exposition_lines() {
        let s: Vec<(Labels, f64)> = "# HELP x y\nmqtt_up{broker=\"a \\\"b\\\"\",x=\"1\"} 1\nfoo_total 3.5 1700000000\nbar{le=\"+Inf\"} +Inf\n# EOF\n"
            .lines()
            .filter_map(split_sample)
            .filter_map(|(k, v)| Some((parse_key(k)?, parse_value(v)?)))
            .collect();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].0.to_string(), r#"mqtt_up{broker="a \"b\"", x="1"}"#);
        assert_eq!(s[1].1, 3.5);
        assert_eq!(s[2].1, f64::INFINITY);
    }

    /// A scraper and its storage, keeping the series named `name` (as an engine whose only
    /// rule reads `name` would).
    struct Reading {
        scraper: Scraper,
        storage: Storage,
        name: &'static str,
    }

    impl Reading {
        fn new(name: &'static str) -> Self {
            Reading {
                scraper: Scraper::default(),
                storage: Storage::new(),
                name,
            }
        }

        fn ingest(&mut self, text: &str, now: i64) {
            let name = self.name;
            self.scraper
                .ingest(&mut self.storage, &|n: &str| n == name, text, now);
        }

        fn snapshot(&mut self, reg: &Registry, now: i64, workers: usize) {
            let name = self.name;
            self.scraper
                .snapshot(&mut self.storage, &|n: &str| n == name, reg, now, workers)
                .expect("snapshot");
        }

        fn history_samples(&self) -> usize {
            self.storage.sample_count()
        }
    }

    /// The pipelined snapshot (encoder thread, text in 64 KiB blocks, lines cut across
    /// blocks) stores exactly what ingesting the whole text does.
    #[test]
    fn snapshot_in_blocks_equals_ingest_of_the_text() {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let (mut piped, mut whole) = (Reading::new("big"), Reading::new("big"));
        let mut reg = Registry::default();
        let big =
            Family::<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        reg.register("big", "wide", big.clone());
        for i in 0..3000 {
            let l = vec![(
                "series".to_string(),
                format!("{i:05}-{}", "x".repeat(i % 37)),
            )];
            big.get_or_create(&l).set(i as f64 + 0.5);
        }
        let text = exposition::encode(&reg, Format::OpenMetrics).expect("encode");
        assert!(text.len() > 2 * BLOCK, "the text spans several blocks");
        for t in [1000, 2000] {
            piped.snapshot(&reg, t, 2);
            whole.ingest(&text, t);
        }
        assert_eq!(piped.history_samples(), 6000);
        assert_eq!(whole.history_samples(), 6000);
        let values = |e: &Reading| -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = e
                .storage
                .candidates(Some("big"))
                .flat_map(|s| {
                    s.range(0, 3000)
                        .map(|(t, v)| (format!("{}@{t}", s.labels), v.to_bits()))
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(values(&piped), values(&whole));
        assert_eq!(piped.scraper.lines(), 3000);
    }

    #[test]
    fn ingest_keeps_read_series_marks_vanished_stale_and_reuses_keys() {
        let mut e = Reading::new("up");
        let up = Labels::from_pairs([("__name__", "up"), ("a", "1")]);
        let unread = "other_metric 5\nother_metric{x=\"}\\\"{\"} 6\n";
        e.ingest(
            &format!("# TYPE up gauge\nup{{a=\"1\"}} 1\n{unread}# EOF\n"),
            1000,
        );
        e.ingest(&format!("up{{a=\"1\"}} 0\n{unread}"), 2000);
        assert_eq!(
            e.history_samples(),
            2,
            "only the series a rule reads is kept"
        );
        assert!(e.storage.is_live(&up));
        assert_eq!(e.scraper.lines(), 3, "one key per line, read or not");
        e.ingest(unread, 3000);
        assert!(!e.storage.is_live(&up), "vanished: stale marker");
        assert_eq!(e.history_samples(), 3);
        assert_eq!(
            e.scraper.lines(),
            2,
            "the key cache holds the last snapshot"
        );
        // the same lines in another order still land on their own series
        let a = Labels::from_pairs([("__name__", "up"), ("a", "1")]);
        let b = Labels::from_pairs([("__name__", "up"), ("a", "2")]);
        e.ingest("up{a=\"1\"} 10\nup{a=\"2\"} 20\n", 4000);
        e.ingest("up{a=\"2\"} 21\nup{a=\"1\"} 11\n", 5000);
        let newest = |e: &Reading, l: &Labels| {
            e.storage
                .candidates(Some("up"))
                .find(|s| s.labels == *l)
                .and_then(|s| s.at_or_before(i64::MAX))
                .map(|(_, v)| v)
        };
        assert_eq!(newest(&e, &a), Some(11.0));
        assert_eq!(newest(&e, &b), Some(21.0));

        // Series appear, vanish and the snapshot shortens: each value still lands on its own
        // series, and the cache always holds exactly the last snapshot's lines.
        let snap = |ids: &[u32], base: u32| -> String {
            ids.iter()
                .map(|i| format!("up{{a=\"{i}\"}} {}\n", base + i))
                .collect()
        };
        for (t, ids) in [
            (6000, vec![1, 2, 3, 4]),
            (7000, vec![1, 9, 2, 4]),
            (8000, vec![1, 9, 2, 4]),
            (9000, vec![1, 9]),
            (10000, vec![5, 1, 9, 2, 4, 3]),
        ] {
            let base = t as u32;
            e.ingest(&snap(&ids, base), t);
            for i in &ids {
                let l = Labels::from_pairs([("__name__", "up"), ("a", &i.to_string())]);
                assert_eq!(newest(&e, &l), Some((base + i) as f64), "t={t} a={i}");
            }
            let keys: Vec<String> = (0..e.scraper.lines())
                .map(|j| e.scraper.lines.key(j).to_string())
                .collect();
            let want: Vec<String> = ids.iter().map(|i| format!("up{{a=\"{i}\"}}")).collect();
            assert_eq!(keys, want, "t={t}");
        }
        let gone = Labels::from_pairs([("__name__", "up"), ("a", "3")]);
        let series = e.storage.candidates(Some("up")).find(|s| s.labels == gone);
        let marks = series.map(|s| s.range(7000, 9000).filter(|(_, v)| is_stale(*v)).count());
        assert_eq!(marks, Some(1), "a vanished series gets one stale marker");
    }
}
