//! The sample history the rule engine reads: label sets, series and a small in-memory store.
//!
//! One [`Storage`] serves both callers: the live engine appends a snapshot of our own registry
//! every evaluation (and a stale marker for every series that vanished, as a Prometheus scrape
//! does), and `rules test` loads promtool's `input_series`. Nothing here knows PromQL.

use std::collections::HashMap;
use std::fmt;

/// Prometheus' staleness marker: a NaN with a distinct bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

pub const METRIC_NAME: &str = "__name__";

/// A label set sorted by name, without empty values (an empty value means "absent").
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Labels(pairs)
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    pub fn name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets (or with an empty value, removes) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    pub fn without_name(&self) -> Labels {
        let mut l = self.clone();
        l.set(METRIC_NAME, "");
        l
    }

    /// Only the listed labels.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        )
    }

    /// All but the listed labels.
    pub fn drop(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        )
    }

    pub fn into_map(self) -> std::collections::BTreeMap<String, String> {
        self.0.into_iter().collect()
    }
}

impl fmt::Display for Labels {
    /// Prometheus' `String()` form: `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        f.write_str(name)?;
        let rest: Vec<_> = self.0.iter().filter(|(k, _)| k != METRIC_NAME).collect();
        if rest.is_empty() && !name.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// One series and its samples in time order (milliseconds, value).
#[derive(Debug)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// Samples with `mint <= t <= maxt` (Prometheus 2.x ranges are closed at both ends).
    pub fn range(&self, mint: i64, maxt: i64) -> &[(i64, f64)] {
        let lo = self.samples.partition_point(|(t, _)| *t < mint);
        let hi = self.samples.partition_point(|(t, _)| *t <= maxt);
        &self.samples[lo..hi.max(lo)]
    }

    /// The newest sample at or before `t`.
    pub fn at_or_before(&self, t: i64) -> Option<(i64, f64)> {
        let hi = self.samples.partition_point(|(ts, _)| *ts <= t);
        hi.checked_sub(1).map(|i| self.samples[i])
    }
}

/// Series indexed by label set and by metric name.
#[derive(Debug, Default)]
pub struct Storage {
    series: Vec<Series>,
    by_labels: HashMap<Labels, usize>,
    by_name: HashMap<String, Vec<usize>>,
}

impl Storage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one sample; samples older than the series' newest are ignored (out of order).
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        let idx = match self.by_labels.get(labels) {
            Some(&i) => i,
            None => {
                let i = self.series.len();
                self.series.push(Series {
                    labels: labels.clone(),
                    samples: Vec::new(),
                });
                self.by_labels.insert(labels.clone(), i);
                self.by_name
                    .entry(labels.name().to_string())
                    .or_default()
                    .push(i);
                i
            }
        };
        let s = &mut self.series[idx];
        match s.samples.last() {
            Some((last, _)) if *last >= t => {}
            _ => s.samples.push((t, v)),
        }
    }

    /// Series whose metric name is `name` (all series when `None`).
    pub fn candidates<'a>(
        &'a self,
        name: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a Series> + 'a> {
        match name {
            Some(n) => match self.by_name.get(n) {
                Some(ids) => Box::new(ids.iter().map(|&i| &self.series[i])),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(self.series.iter()),
        }
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The newest sample of a series is live (not a stale marker).
    pub fn is_live(&self, labels: &Labels) -> bool {
        self.by_labels
            .get(labels)
            .and_then(|&i| self.series[i].samples.last())
            .is_some_and(|(_, v)| !is_stale(*v))
    }

    /// Drops samples older than `keep_from` per series (retention chosen per metric name by
    /// `keep_from`), and series left with no samples.
    pub fn trim(&mut self, keep_from: impl Fn(&str) -> i64) {
        let mut removed = false;
        for s in &mut self.series {
            let from = keep_from(s.labels.name());
            let cut = s.samples.partition_point(|(t, _)| *t < from);
            // Keep a trailing stale marker's predecessor out: a series whose only sample is
            // a stale marker carries no information and is dropped below.
            if cut > 0 {
                s.samples.drain(..cut);
            }
            if s.samples.iter().all(|(_, v)| is_stale(*v)) {
                s.samples.clear();
                removed = true;
            }
        }
        if removed {
            self.series.retain(|s| !s.samples.is_empty());
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        self.by_labels.clear();
        self.by_name.clear();
        for (i, s) in self.series.iter().enumerate() {
            self.by_labels.insert(s.labels.clone(), i);
            self.by_name
                .entry(s.labels.name().to_string())
                .or_default()
                .push(i);
        }
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_and_empty_values_absent() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        let mut m = l.clone();
        m.set("__name__", "up");
        assert_eq!(m.to_string(), r#"up{a="1", b="2"}"#);
        m.set("a", "");
        assert_eq!(m.get("a"), "");
        assert_eq!(m.get("b"), "2");
    }

    #[test]
    fn range_is_closed_and_trim_drops_dead_series() {
        let mut s = Storage::new();
        let up = Labels::from_pairs([("__name__", "up")]);
        let gone = Labels::from_pairs([("__name__", "gone")]);
        for t in 0..10 {
            s.append(&up, t * 1000, t as f64);
        }
        s.append(&gone, 0, 1.0);
        s.append(&gone, 1000, stale_nan());
        let series = s.candidates(Some("up")).next().expect("series");
        assert_eq!(series.range(2000, 4000).len(), 3);
        assert_eq!(series.at_or_before(4500), Some((4000, 4.0)));
        s.trim(|_| 5000);
        assert_eq!(s.series().len(), 1);
        assert_eq!(s.sample_count(), 5);
        assert!(s.is_live(&up));
    }
}
