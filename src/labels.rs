//! Label sets: Prometheus' `model/labels`. A [`Labels`] is sorted by name, has no empty
//! values and shares its strings; [`METRIC_NAME`] is the label that holds a series' name.

use std::fmt;
use std::sync::Arc;

/// The label holding a series' metric name (Prometheus' `labels.MetricName`).
pub const METRIC_NAME: &str = "__name__";

/// A label set sorted by name, without empty values (an empty value means "absent").
///
/// Cheap to clone (one reference count); names and values are shared `Arc<str>`s, interned
/// by [`Storage`](crate::rules::storage::Storage) so 50 000 series carrying `instance="…"` hold the string once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(pub(crate) Arc<[(Arc<str>, Arc<str>)]>);

impl Labels {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self::from_arcs(
            pairs
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }

    fn from_arcs(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Labels(pairs.into())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_arcs(
            pairs
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    pub fn get(&self, name: &str) -> &str {
        match self.find(name) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    pub fn name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets (or with an empty value, removes) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        let found = self.find(name);
        if found.is_err() && value.is_empty() {
            return;
        }
        let mut v: Vec<(Arc<str>, Arc<str>)> = self.0.to_vec();
        match found {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].1 = Arc::from(value),
            Err(i) => v.insert(i, (Arc::from(name), Arc::from(value))),
        }
        self.0 = v.into();
    }

    /// These labels without `__name__` (when `drop_name`) and with `sets` applied in order
    /// (an empty value removes the label), in one rebuild.
    pub fn rebuilt(&self, drop_name: bool, sets: &[(Arc<str>, Arc<str>)]) -> Labels {
        let mut v: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(self.0.len() + sets.len());
        v.extend(
            self.0
                .iter()
                .filter(|(k, _)| !(drop_name && &**k == METRIC_NAME))
                .cloned(),
        );
        for (k, val) in sets {
            match v.binary_search_by(|(n, _)| (**n).cmp(k)) {
                Ok(i) if val.is_empty() => {
                    v.remove(i);
                }
                Ok(i) => v[i].1 = val.clone(),
                Err(_) if val.is_empty() => {}
                Err(i) => v.insert(i, (k.clone(), val.clone())),
            }
        }
        Labels(v.into())
    }

    pub fn without_name(&self) -> Labels {
        match self.find(METRIC_NAME) {
            Err(_) => self.clone(),
            // `__name__` sorts before every lower-case name, so it is almost always first:
            // one allocation for the rest.
            Ok(0) => Labels(Arc::from(&self.0[1..])),
            Ok(_) => self.rebuilt(true, &[]),
        }
    }

    /// Only the listed labels.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| **n == **k))
                .cloned()
                .collect(),
        )
    }

    /// All but the listed labels.
    pub fn drop(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| **n == **k))
                .cloned()
                .collect(),
        )
    }

    pub fn into_map(self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl fmt::Display for Labels {
    /// Prometheus' `String()` form: `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        f.write_str(name)?;
        let rest: Vec<_> = self.iter().filter(|(k, _)| *k != METRIC_NAME).collect();
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

impl Labels {
    /// Prometheus 2.42's `labels.Labels.String()`: every label, the metric name too, in
    /// braces as `{__name__="x", a="b"}`, values quoted as Go's `strconv.Quote` does. The
    /// form promtool prints samples and PromQL errors print series in.
    pub fn braces(&self) -> Braces<impl Iterator<Item = (&str, &str)> + Clone> {
        Braces(self.0.iter().map(|(k, v)| (&**k, &**v)))
    }
}

/// The `{k="v", …}` form of labels (see [`Labels::braces`]): every pair of the iterator, in
/// its order.
pub struct Braces<I>(pub I);

impl<'a, I: Iterator<Item = (&'a str, &'a str)> + Clone> fmt::Display for Braces<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.clone().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={}", go_quote(v))?;
        }
        f.write_str("}")
    }
}

/// Go's `strconv.Quote`: double quotes; `\a \b \f \n \r \t \v`, `\\` and `\"` escaped,
/// other control characters as `\xXX` (below U+0080) or `\uXXXX`; the rest as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_are_prometheus_label_strings() {
        let l = Labels::from_pairs([("__name__", "b"), ("i", "a\"b\\c\n\u{1}é")]);
        assert_eq!(
            l.braces().to_string(),
            r#"{__name__="b", i="a\"b\\c\n\x01é"}"#
        );
        assert_eq!(Labels::default().braces().to_string(), "{}");
    }

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
}
