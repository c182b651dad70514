//! Rule groups, Prometheus' `rules.Group` (`rules/group.go`): a group's rules evaluated in
//! order at one instant ([`super::recording`] and [`super::alerting`] do one rule each), the
//! per-rule health and timing, and what a reload keeps (the state of unchanged rules).
//!
//! Shared by the live engine and `rules test`, so both follow the same code path.

use super::alerting::{Alert, alert};
use super::file::{Group, Rule, RuleKind};
use super::labels::Labels;
use super::promql::{self, Value};
use super::recording::record;
use super::storage::Storage;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A rule's health after its last evaluation (Prometheus' `RuleHealth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    /// The health as Prometheus' API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// Evaluation state of one rule.
#[derive(Debug)]
pub struct RuleState {
    /// The rule as loaded; shared with the readers' copy (its expression and templates are
    /// never copied to publish an evaluation).
    pub rule: Arc<Rule>,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_eval: Option<i64>,
    pub eval_seconds: f64,
    /// Alerting rules: active alerts by identity.
    pub active: FxHashMap<Labels, Alert>,
    /// Recording rules: the series written last time (stale markers for the vanished).
    pub(super) written: FxHashSet<Labels>,
    /// Where the windows of the rule's range selectors started last time.
    pub(super) cursors: promql::Cursors,
    /// The step (ms) of a subquery without one: the engine's `evaluation_interval`, not the
    /// group's own `interval` (as Prometheus takes its global one).
    pub(super) subquery_step: i64,
}

impl RuleState {
    /// `rule` not evaluated yet: unknown health, no alerts.
    fn new(rule: Arc<Rule>, subquery_step: i64) -> Self {
        RuleState {
            rule,
            health: Health::Unknown,
            last_error: None,
            last_eval: None,
            eval_seconds: 0.0,
            active: FxHashMap::default(),
            written: FxHashSet::default(),
            cursors: promql::Cursors::default(),
            subquery_step,
        }
    }
}

/// What templates can use beyond the alert itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub external_labels: Arc<BTreeMap<String, String>>,
    pub external_url: Arc<str>,
}

/// A rule as written: name, expression, `for`, `keep_firing_for`, labels and annotations.
/// Two rules with the same definition are the same rule (Prometheus compares rule strings):
/// a reload and a restart keep its alerts.
pub fn definition(r: &Rule) -> String {
    let texts = |l: &[(String, String, super::template::Template)]| -> Vec<(String, String)> {
        l.iter().map(|(k, t, _)| (k.clone(), t.clone())).collect()
    };
    let kind = match &r.kind {
        RuleKind::Record => "record".to_owned(),
        RuleKind::Alert {
            hold,
            keep_firing_for,
            annotations,
        } => format!(
            "alert for={}ms keep_firing_for={}ms annotations={:?}",
            hold.as_millis(),
            keep_firing_for.as_millis(),
            texts(annotations)
        ),
    };
    format!(
        "{} {:?} {kind} labels={:?}",
        r.name,
        r.expr_text,
        texts(&r.labels)
    )
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    definition(a) == definition(b)
}

/// A rule group and the evaluation state of its rules (Prometheus' `rules.Group`).
#[derive(Debug)]
pub struct GroupState {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: usize,
    pub rules: Vec<RuleState>,
    pub last_eval: Option<i64>,
    pub eval_seconds: f64,
}

impl GroupState {
    /// A reload: take over the state of every rule of `old` (the same group) whose
    /// definition is unchanged. Returns how many rules kept their state.
    pub fn inherit(&mut self, old: &mut GroupState) -> usize {
        let mut kept = 0;
        for r in &mut self.rules {
            let Some(o) = old
                .rules
                .iter_mut()
                .find(|o| o.last_eval.is_some() && same_rule(&o.rule, &r.rule))
            else {
                continue;
            };
            r.active = std::mem::take(&mut o.active);
            r.written = std::mem::take(&mut o.written);
            r.health = o.health;
            r.last_error = o.last_error.take();
            r.last_eval = o.last_eval.take();
            r.eval_seconds = o.eval_seconds;
            kept += 1;
        }
        self.last_eval = old.last_eval;
        self.eval_seconds = old.eval_seconds;
        kept
    }

    /// A copy for readers (the HTTP API, the `ALERTS` collector): the rules, their health,
    /// timing and alerts, without the evaluator's working state (the series a recording rule
    /// wrote, the selectors' cursors), which only the engine's own copy needs.
    pub fn published(&self) -> GroupState {
        let mut p = GroupState {
            name: self.name.clone(),
            file: self.file.clone(),
            interval: self.interval,
            limit: self.limit,
            rules: self
                .rules
                .iter()
                .map(|r| RuleState::new(Arc::clone(&r.rule), r.subquery_step))
                .collect(),
            last_eval: None,
            eval_seconds: 0.0,
        };
        self.publish_into(&mut p);
        p
    }

    /// Copies what readers see after an evaluation (health, last error, timing, alerts) into
    /// `readers`, a [`GroupState::published`] copy of this same group.
    pub fn publish_into(&self, readers: &mut GroupState) {
        for (r, mine) in readers.rules.iter_mut().zip(&self.rules) {
            r.health = mine.health;
            r.last_error.clone_from(&mine.last_error);
            r.last_eval = mine.last_eval;
            r.eval_seconds = mine.eval_seconds;
            r.active.clone_from(&mine.active);
        }
        readers.last_eval = self.last_eval;
        readers.eval_seconds = self.eval_seconds;
    }

    /// Fresh state for group `g`; without an `interval` of its own it is evaluated every
    /// `default_interval`, which is also the step of its subqueries that name none.
    pub fn new(g: Group, default_interval: Duration) -> Self {
        let subquery_step = default_interval.as_millis() as i64;
        GroupState {
            name: g.name,
            file: g.file,
            interval: g.interval.unwrap_or(default_interval),
            limit: g.limit,
            rules: g
                .rules
                .into_iter()
                .map(|r| RuleState::new(Arc::new(r), subquery_step))
                .collect(),
            last_eval: None,
            eval_seconds: 0.0,
        }
    }

    /// Evaluates every rule at `ts` (ms) in order; returns how many rules failed.
    pub fn eval(&mut self, storage: &mut Storage, ts: i64, ctx: &Context) -> usize {
        let limit = self.limit;
        self.eval_each(ts, |r| match &r.rule.kind {
            RuleKind::Record => record(r, storage, ts, limit),
            RuleKind::Alert { .. } => alert(r, storage, ts, limit, ctx),
        })
    }

    /// A group that records nothing only reads the history.
    pub fn writes(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.rule.kind, RuleKind::Record))
    }

    /// [`GroupState::eval`] for a group that records nothing (see [`GroupState::writes`]):
    /// it needs the history only shared, so such groups can be evaluated side by side.
    pub fn eval_alerts(&mut self, storage: &Storage, ts: i64, ctx: &Context) -> usize {
        let limit = self.limit;
        self.eval_each(ts, |r| match &r.rule.kind {
            RuleKind::Record => Err("recording rule in a read-only evaluation".into()),
            RuleKind::Alert { .. } => alert(r, storage, ts, limit, ctx),
        })
    }

    fn eval_each(
        &mut self,
        ts: i64,
        mut one: impl FnMut(&mut RuleState) -> Result<(), String>,
    ) -> usize {
        let started = std::time::Instant::now();
        let mut failures = 0;
        for r in &mut self.rules {
            let t0 = std::time::Instant::now();
            let result = one(r);
            r.eval_seconds = t0.elapsed().as_secs_f64();
            r.last_eval = Some(ts);
            match result {
                Ok(()) => {
                    r.health = Health::Ok;
                    r.last_error = None;
                }
                Err(e) => {
                    r.health = Health::Err;
                    r.last_error = Some(e);
                    failures += 1;
                }
            }
        }
        self.last_eval = Some(ts);
        self.eval_seconds = started.elapsed().as_secs_f64();
        failures
    }
}

/// A rule's expression at `ts` (ms) as a vector (a scalar becomes one sample without
/// labels); `subquery_step` (ms) is the step of a subquery without one. Errors: the
/// evaluation's, or a range vector (a bare subquery).
pub(super) fn query(
    expr: &promql_parser::parser::Expr,
    storage: &Storage,
    ts: i64,
    subquery_step: i64,
    cursors: &mut promql::Cursors,
) -> Result<Vec<promql::Sample>, String> {
    match promql::eval_at_later(expr, storage, ts, subquery_step, cursors)? {
        Value::Vector(v) => Ok(v),
        Value::Scalar(v) => Ok(vec![promql::Sample {
            labels: Labels::default(),
            value: v,
        }]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alerting::AlertState;
    use crate::rules::file;
    use crate::rules::storage::stale_nan;

    fn group(rules: &str) -> GroupState {
        let text = format!("groups:\n  - name: g\n    rules:\n{rules}");
        let g = file::parse(&text, "t.yml").expect("rules").remove(0);
        GroupState::new(g, Duration::from_secs(60))
    }

    fn states(g: &GroupState) -> Vec<AlertState> {
        g.rules[0].active.values().map(|a| a.state).collect()
    }

    #[test]
    fn pending_firing_resolved_and_keep_firing() {
        let mut g = group(
            "      - alert: Down\n        expr: up == 0\n        for: 2m\n        keep_firing_for: 1m\n        labels: { severity: page }\n        annotations: { summary: '{{ $labels.job }} down ({{ $value }})' }\n",
        );
        let mut s = Storage::new();
        let up = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let ctx = Context::default();
        let min = 60_000;
        for (i, v) in [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0].into_iter().enumerate() {
            let ts = i as i64 * min;
            s.append(&up, ts, v);
            assert_eq!(g.eval(&mut s, ts, &ctx), 0);
            let want: &[AlertState] = match i {
                0 => &[],
                1 | 2 => &[AlertState::Pending],
                3 | 4 => &[AlertState::Firing], // 4: kept firing for keep_firing_for
                _ => &[AlertState::Inactive],
            };
            assert_eq!(states(&g), want, "minute {i}");
        }
        let a = g.rules[0]
            .active
            .values()
            .next()
            .expect("resolved alert kept");
        assert_eq!(
            a.labels.to_string(),
            r#"{alertname="Down", job="a", severity="page"}"#
        );
        assert_eq!(a.annotations["summary"], "a down (0)");
        assert_eq!(
            (a.active_at, a.fired_at, a.resolved_at),
            (min, Some(3 * min), Some(5 * min))
        );
    }

    #[test]
    fn recording_rules_write_back_and_go_stale() {
        let mut g = group(
            "      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Sum\n        expr: job:up:sum > 1\n",
        );
        let mut s = Storage::new();
        let ctx = Context::default();
        for (i, job) in ["a", "a"].iter().enumerate() {
            s.append(
                &Labels::from_pairs([("__name__", "up"), ("job", job), ("i", &i.to_string())]),
                0,
                1.0,
            );
        }
        g.eval(&mut s, 0, &ctx);
        assert_eq!(
            g.rules[1].active.len(),
            1,
            "the alert sees the recorded series at the same instant"
        );
        // The source series vanish (stale): the recorded series is marked stale too.
        for i in 0..2 {
            s.append(
                &Labels::from_pairs([("__name__", "up"), ("job", "a"), ("i", &i.to_string())]),
                60_000,
                stale_nan(),
            );
        }
        g.eval(&mut s, 60_000, &ctx);
        assert!(!s.is_live(&Labels::from_pairs([
            ("__name__", "job:up:sum"),
            ("job", "a")
        ])));
    }
}
