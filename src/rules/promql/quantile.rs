//! `histogram_quantile` (Prometheus' `promql/quantile.go`: `bucketQuantile`).

use super::engine::unique;
use super::value::Sample;
use crate::rules::labels::{Labels, METRIC_NAME};
use rustc_hash::FxHashMap;

/// `histogram_quantile(q, v)`: one sample per bucket series group (all labels but `le`,
/// the metric name included, as Prometheus groups them), labelled without `le` and the
/// name. Two groups that differ only in their name get the same label set, which Prometheus
/// refuses: "vector cannot contain metrics with the same labelset".
pub(super) fn histogram_quantile(q: f64, v: Vec<Sample>) -> Result<Vec<Sample>, String> {
    let mut groups: FxHashMap<Labels, Vec<(f64, f64)>> = FxHashMap::default();
    let mut order = vec![];
    for s in v {
        let le = s.labels.get("le");
        let bound = match le {
            "+Inf" | "Inf" | "+inf" | "inf" => f64::INFINITY,
            "-Inf" | "-inf" => f64::NEG_INFINITY,
            other => match other.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            },
        };
        let key = s.labels.drop(&["le".to_string()]);
        let e = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            vec![]
        });
        e.push((bound, s.value));
    }
    let named = order.iter().any(|k| !k.get(METRIC_NAME).is_empty());
    let out = order
        .into_iter()
        .filter_map(|k| {
            let b = groups.remove(&k)?;
            Some(Sample {
                labels: k.without_name(),
                value: bucket_quantile(q, b),
            })
        })
        .collect();
    // Without names the groups' label sets are distinct already.
    if named { unique(out) } else { Ok(out) }
}

/// Prometheus `bucketQuantile` (2.42).
fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // coalesceBuckets
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (bound, count) in b {
        match c.last_mut() {
            Some(last) if last.0 == bound => last.1 += count,
            _ => c.push((bound, count)),
        }
    }
    // ensureMonotonic
    let mut max = f64::NEG_INFINITY;
    for x in &mut c {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = c.len() - 1;
    let i = c[..n].partition_point(|x| x.1 < rank);
    if i == n {
        return c[n - 1].0;
    }
    if i == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let mut start = 0.0;
    let end = c[i].0;
    let mut count = c[i].1;
    if i > 0 {
        start = c[i - 1].0;
        count -= c[i - 1].1;
        rank -= c[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantile_interpolates() {
        let b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.5, b.clone()), 0.1 + 0.4 * 0.5);
        assert_eq!(bucket_quantile(0.99, b), 0.5);
    }
}
