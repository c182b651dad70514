//! Alert label and annotation templates: the part of Go's `text/template` that Prometheus rule
//! files use, with Prometheus' template functions and Go's exact number formatting.
//!
//! Supported: text, `{{ pipeline }}`, `{{- … -}}` trimming, comments, `{{ $x := … }}`,
//! `{{ if … }}{{ else if … }}{{ else }}{{ end }}`, variables `$labels`, `$externalLabels`,
//! `$externalURL`, `$value` and the dot fields `.Labels`, `.ExternalLabels`, `.ExternalURL`,
//! `.Value`; functions `humanize`, `humanize1024`, `humanizeDuration`, `humanizePercentage`,
//! `printf`, `print`, `toUpper`, `toLower`, `title`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`,
//! `or`, `not`. Anything else (`range`, `query`, `with`, …) is refused when the rule file loads.
//!
//! Laid out as Go's `text/template` and Prometheus' `template` package: [`parse`] turns the
//! text into nodes (refusing what we do not support), [`exec`] expands them against [`Data`]
//! (Prometheus' functions included), [`format`](mod@format) is Go's `fmt` number and `printf` formatting
//! and Prometheus' humanizers.

pub mod exec;
pub mod format;
pub mod parse;

pub use exec::ExecError;
pub use format::{go_exp, go_upper_exp};

use super::labels::Labels;
use exec::{Val, run};
use parse::Node;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a template sees.
#[derive(Clone, Debug, Default)]
pub struct Data {
    /// The sample's labels (one reference count to copy).
    pub labels: Labels,
    pub external_labels: Arc<BTreeMap<String, String>>,
    pub external_url: Arc<str>,
    pub value: f64,
}
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `text`; an error names what is wrong or unsupported (see [`parse`]).
    pub fn parse(text: &str) -> Result<Template, String> {
        Ok(Template {
            nodes: parse::parse(text)?,
        })
    }

    /// The text of a template without actions: its expansion, whatever the data.
    pub fn constant(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [] => Some(""),
            [Node::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The template expanded against `data`; an error names the node, as Go does.
    pub fn expand(&self, data: &Data) -> Result<String, ExecError> {
        // `$labels`, `$externalLabels`, `$externalURL` and `$value` are looked up in `data`
        // when no variable of the template shadows them (see `eval_arg`): no per-expansion
        // copies of the label maps.
        let mut vars: Vec<(String, Val)> = Vec::new();
        let mut out = String::new();
        run(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// Expands `t` the way Prometheus does for the labels and annotations of alerting rule
/// `rule`: an error becomes the text, worded as Prometheus words it.
pub fn expand_or_error(t: &Template, data: &Data, rule: &str) -> String {
    t.expand(data).unwrap_or_else(|e| {
        format!(
            "<error expanding template: {}>",
            e.go(&format!("__alert_{rule}"))
        )
    })
}
