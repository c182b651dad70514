//! Notifications: which alerts go to which receiver and when ([`Dispatcher`], pure and
//! synchronous, called by the rule engine after each evaluation), payload builders (one file
//! per format, pure functions), and delivery (`queue`: one bounded queue and one worker per
//! receiver, so a dead webhook never blocks evaluation, collection or probing).
//!
//! When to send follows Alertmanager for grouped receivers (webhook, slack, teams, discord):
//! a group is notified when its set of firing alerts changes, when alerts resolve (with
//! `send_resolved`), and every `repeat_interval` while anything fires. PagerDuty gets one
//! event per alert (trigger, resolve). The `alertmanager` receiver gets what Prometheus sends:
//! every firing alert each `resend_delay`, resolved ones for as long as the rule keeps them.

pub mod alertmanager;
pub mod discord;
pub mod pagerduty;
pub mod queue;
pub mod signing;
pub mod slack;
pub mod teams;
pub mod webhook;

use crate::config::{NotifyConfig, ReceiverKind, Route};
use crate::labels::Labels;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// An alert as the rule engine hands it over after an evaluation: firing or resolved, never
/// pending (Prometheus' `notifier.Alert`: the rule engine's own alert type stays in `rules`,
/// which converts in `sendAlerts`; notify never imports `rules`). Borrowed, so the
/// conversion after every evaluation copies no labels or annotations.
#[derive(Clone, Copy, Debug)]
pub struct Alert<'a> {
    /// The alert's identity: the rule's output labels with `alertname`, without external labels.
    pub labels: &'a Labels,
    /// Rendered annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// When it started firing, milliseconds since the epoch.
    pub starts_at: Option<i64>,
    /// `Some(ms)`: resolved at that time (ms since the epoch); `None`: firing.
    pub resolved_at: Option<i64>,
}

/// One alert as receivers see it (external labels added).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertMsg {
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Milliseconds since the epoch.
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub generator_url: String,
    pub fingerprint: String,
}

/// Alerts of one group for one receiver.
#[derive(Clone, Debug)]
pub struct Batch {
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<AlertMsg>,
}

impl Batch {
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// Labels (or annotations) shared by every alert.
    pub fn common<'a>(
        &'a self,
        f: impl Fn(&'a AlertMsg) -> &'a BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut it = self.alerts.iter();
        let Some(first) = it.next() else {
            return BTreeMap::new();
        };
        let mut common = f(first).clone();
        for a in it {
            let m = f(a);
            common.retain(|k, v| m.get(k) == Some(v));
        }
        common
    }

    /// `[FIRING:2] MqttDown broker=edge`, Alertmanager's default title.
    pub fn title(&self) -> String {
        let firing = self
            .alerts
            .iter()
            .filter(|a| a.status == Status::Firing)
            .count();
        let status = self.status();
        let n = if status == Status::Firing {
            firing
        } else {
            self.alerts.len()
        };
        let labels: Vec<String> = self
            .group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "[{}:{n}] {}",
            status.as_str().to_uppercase(),
            labels.join(" ")
        )
    }
}

/// The alert's summary annotation, else its name.
pub fn summary(a: &AlertMsg) -> String {
    a.annotations
        .get("summary")
        .or_else(|| a.labels.get("alertname"))
        .cloned()
        .unwrap_or_default()
}

pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// RFC 3339 with milliseconds; `None` is Go's zero time, as Alertmanager writes it.
pub fn rfc3339(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 0 => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64))
                .to_string()
        }
        _ => "0001-01-01T00:00:00Z".into(),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Alertmanager's alert fingerprint: FNV-1a 64 over sorted `name 0xff value 0xff`, as hex.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// Prometheus' `String()` of a label set: `{a="b", c="d"}`.
fn label_string(l: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// A delivery for one receiver: the body and the `webhook-id` it keeps across retries.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub body: Vec<u8>,
}

/// What one notification group was last sent: the fingerprints notified as firing, and when.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupSent {
    firing: BTreeSet<String>,
    last_sent: i64,
}

/// What one receiver has already been sent, by receiver name: kept in `rules.state_file` so
/// that a restart neither pages again for alerts already notified nor forgets to send their
/// resolution.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiverSent {
    pub receiver: String,
    /// Notification group key → what the group was sent (webhook, Slack, Teams, Discord).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupSent>,
    /// Alert fingerprint → when last sent (Alertmanager, PagerDuty).
    #[serde(default)]
    pub alerts: BTreeMap<String, i64>,
}

/// Decides what each receiver is sent; delivery is `queue`'s business.
pub struct Dispatcher {
    cfg: NotifyConfig,
    external_labels: BTreeMap<String, String>,
    external_url: String,
    eval_interval: Duration,
    groups: Vec<HashMap<String, GroupSent>>,
    /// Per receiver, per fingerprint: when last sent (alertmanager, pagerduty).
    sent: Vec<HashMap<String, i64>>,
    seq: u64,
    /// Per alert identity: its labels as sent, fingerprint and routes.
    routed: FxHashMap<Labels, Routed>,
    /// Dispatches so far (marks the alerts each one saw).
    cycle: u64,
}

/// What one evaluation produced for the receivers: (receiver index, job).
pub type Outbox = Vec<(usize, Job)>;

impl Dispatcher {
    pub fn new(
        cfg: NotifyConfig,
        external_labels: BTreeMap<String, String>,
        external_url: String,
        eval_interval: Duration,
    ) -> Self {
        let n = cfg.receivers.len();
        Dispatcher {
            cfg,
            external_labels,
            external_url,
            eval_interval,
            groups: (0..n).map(|_| HashMap::new()).collect(),
            sent: (0..n).map(|_| HashMap::new()).collect(),
            seq: 0,
            routed: FxHashMap::default(),
            cycle: 0,
        }
    }

    /// Take over what `old` already sent, receiver by receiver name (a reload).
    pub fn inherit(&mut self, mut old: Dispatcher) {
        for (i, r) in self.cfg.receivers.iter().enumerate() {
            if let Some(j) = old.cfg.receivers.iter().position(|o| o.name == r.name) {
                self.groups[i] = std::mem::take(&mut old.groups[j]);
                self.sent[i] = std::mem::take(&mut old.sent[j]);
            }
        }
        self.seq = old.seq;
    }

    /// What every receiver has been sent so far.
    pub fn sent(&self) -> Vec<ReceiverSent> {
        self.cfg
            .receivers
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.groups[*i].is_empty() || !self.sent[*i].is_empty())
            .map(|(i, r)| ReceiverSent {
                receiver: r.name.clone(),
                groups: self.groups[i]
                    .iter()
                    .map(|(k, g)| (k.clone(), g.clone()))
                    .collect(),
                alerts: self.sent[i].iter().map(|(k, t)| (k.clone(), *t)).collect(),
            })
            .collect()
    }

    /// Take over what a previous run had sent (see [`Dispatcher::sent`]), receiver by name;
    /// receivers that are gone are ignored. Returns how many receivers were restored.
    pub fn restore_sent(&mut self, saved: Vec<ReceiverSent>) -> usize {
        let mut restored = 0;
        for r in saved {
            let Some(i) = self.cfg.receivers.iter().position(|c| c.name == r.receiver) else {
                continue;
            };
            self.groups[i] = r.groups.into_iter().collect();
            self.sent[i] = r.alerts.into_iter().collect();
            restored += 1;
        }
        restored
    }

    /// Alerts after an evaluation (firing and resolved; pending ones are ignored) → jobs.
    ///
    /// Runs after every evaluation over every active alert, so the per-alert work is kept
    /// small: an alert's labels as sent, fingerprint and routes are worked out once (they
    /// only depend on its identity) and a message is only built for what is actually sent.
    pub fn dispatch(&mut self, alerts: &[Alert<'_>], now: i64) -> Outbox {
        let mut out = vec![];
        let Dispatcher {
            cfg,
            external_labels,
            external_url,
            eval_interval,
            groups: group_state,
            sent,
            seq,
            routed,
            cycle,
        } = self;
        let Some(route) = &cfg.route else {
            return out;
        };
        *cycle += 1;
        let resend = cfg.resend_delay.max(*eval_interval).as_millis() as i64;
        for a in alerts {
            routed
                .entry(a.labels.clone())
                .or_insert_with(|| Routed::new(a, external_labels, route))
                .cycle = *cycle;
        }
        // Alerts gone since the last evaluation are forgotten.
        routed.retain(|_, r| r.cycle == *cycle);
        let routed = &*routed;
        let items: Vec<Item> = alerts
            .iter()
            .filter_map(|a| {
                let (status, ends_at) = match a.resolved_at {
                    Some(r) => (Status::Resolved, Some(r)),
                    None => (Status::Firing, Some(now + 4 * resend)),
                };
                Some(Item {
                    alert: *a,
                    routed: routed.get(a.labels)?,
                    status,
                    ends_at,
                })
            })
            .collect();
        let msg = |i: &Item| -> AlertMsg {
            let r = i.routed;
            AlertMsg {
                status: i.status,
                fingerprint: r.fingerprint.clone(),
                labels: sent_labels(&i.alert, external_labels),
                annotations: i.alert.annotations.clone(),
                starts_at: i.alert.starts_at,
                ends_at: i.ends_at,
                generator_url: external_url.clone(),
            }
        };
        // receiver → group key → (group labels, items)
        let mut per: Vec<FxHashMap<&str, Group>> = (0..cfg.receivers.len())
            .map(|_| FxHashMap::default())
            .collect();
        for i in &items {
            for t in &i.routed.targets {
                per[t.receiver]
                    .entry(t.key.as_str())
                    .or_insert_with(|| (&t.group_labels, vec![]))
                    .1
                    .push(i);
            }
        }
        // Groups in key order, so what is sent does not depend on hashing.
        let per = per.into_iter().map(|groups| {
            let mut groups: Vec<(&str, Group)> = groups.into_iter().collect();
            groups.sort_unstable_by_key(|(k, _)| *k);
            groups
        });
        let mut job = |receiver: usize, body: Vec<u8>| {
            *seq += 1;
            let id = format!("msg_{:x}_{}_{}", now_ms(), receiver, seq);
            out.push((receiver, Job { id, body }));
        };
        let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
        for (r, groups) in per.enumerate() {
            let rc = &cfg.receivers[r];
            match rc.kind {
                ReceiverKind::Alertmanager => {
                    let resend = cfg.resend_delay.as_millis() as i64;
                    let sent = &mut sent[r];
                    let mut batch = vec![];
                    for i in groups.into_iter().flat_map(|(_, (_, v))| v) {
                        let fp = &i.routed.fingerprint;
                        let last = sent.get(fp).copied();
                        let due = match (i.status, last) {
                            (_, None) => true,
                            (Status::Resolved, Some(l)) => {
                                i.ends_at.is_some_and(|e| e > l) || l + resend < now
                            }
                            (Status::Firing, Some(l)) => l + resend < now,
                        };
                        if due {
                            sent.insert(fp.clone(), now);
                            batch.push(msg(i));
                        }
                    }
                    // Alerts no longer in the evaluation are forgotten.
                    let live: FxHashSet<&str> = items
                        .iter()
                        .map(|i| i.routed.fingerprint.as_str())
                        .collect();
                    sent.retain(|fp, _| live.contains(fp.as_str()));
                    if !batch.is_empty() {
                        job(r, json(alertmanager::body(&batch)));
                    }
                }
                ReceiverKind::Pagerduty => {
                    let key = rc
                        .routing_key
                        .as_ref()
                        .map(|k| k.current().expose().to_string())
                        .unwrap_or_default();
                    let repeat = cfg.repeat_interval.as_millis() as i64;
                    let sent = &mut sent[r];
                    for i in groups.into_iter().flat_map(|(_, (_, v))| v) {
                        let fp = &i.routed.fingerprint;
                        let last = sent.get(fp).copied();
                        match i.status {
                            Status::Firing if last.is_none_or(|l| l + repeat <= now) => {
                                sent.insert(fp.clone(), now);
                                job(r, json(pagerduty::event(&msg(i), &key)));
                            }
                            Status::Resolved if last.is_some() => {
                                sent.remove(fp);
                                if rc.send_resolved {
                                    job(r, json(pagerduty::event(&msg(i), &key)));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {
                    let repeat = cfg.repeat_interval.as_millis() as i64;
                    let state = &mut group_state[r];
                    for (key, (gl, members)) in &groups {
                        let st = state.entry((*key).to_string()).or_default();
                        let mut firing: Vec<&str> = members
                            .iter()
                            .filter(|i| i.status == Status::Firing)
                            .map(|i| i.routed.fingerprint.as_str())
                            .collect();
                        // In the order of `st.firing` (a set) to compare without copies.
                        firing.sort_unstable();
                        firing.dedup();
                        let resolved = |i: &Item| {
                            i.status == Status::Resolved
                                && st.firing.contains(&i.routed.fingerprint)
                        };
                        let any_resolved = members.iter().any(|i| resolved(i));
                        let changed = !firing
                            .iter()
                            .copied()
                            .eq(st.firing.iter().map(String::as_str));
                        let repeat_due = !firing.is_empty() && now - st.last_sent >= repeat;
                        let worth = !firing.is_empty() || (rc.send_resolved && any_resolved);
                        if (changed || repeat_due) && worth {
                            let alerts: Vec<AlertMsg> = members
                                .iter()
                                .filter(|i| {
                                    i.status == Status::Firing || (rc.send_resolved && resolved(i))
                                })
                                .map(|i| msg(i))
                                .collect();
                            let b = Batch {
                                group_key: (*key).to_string(),
                                group_labels: (*gl).clone(),
                                alerts,
                            };
                            let body = match rc.kind {
                                ReceiverKind::Slack => json(slack::body(&b)),
                                ReceiverKind::Teams => json(teams::body(&b)),
                                ReceiverKind::Discord => json(discord::body(&b)),
                                _ => webhook::body(&b, &rc.name, external_url),
                            };
                            job(r, body);
                            st.last_sent = now;
                        }
                        if changed {
                            st.firing = firing.iter().map(|f| f.to_string()).collect();
                        }
                    }
                    // Groups with nothing firing any more are forgotten.
                    state.retain(|k, st| {
                        !st.firing.is_empty()
                            && groups
                                .binary_search_by_key(&k.as_str(), |(g, _)| *g)
                                .is_ok()
                    });
                }
            }
        }
        out
    }
}

/// One notification group of an evaluation: its group labels and alerts.
type Group<'a> = (&'a BTreeMap<String, String>, Vec<&'a Item<'a>>);

/// One alert of an evaluation, for [`Dispatcher::dispatch`].
struct Item<'a> {
    alert: Alert<'a>,
    routed: &'a Routed,
    status: Status,
    ends_at: Option<i64>,
}

/// An alert's labels as receivers see them: its own, and the external labels it lacks.
fn sent_labels(
    a: &Alert<'_>,
    external_labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = a.labels.clone().into_map();
    for (k, v) in external_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    labels
}

/// What an alert's identity decides once: its fingerprint and where it goes.
struct Routed {
    fingerprint: String,
    targets: Vec<RoutedTarget>,
    /// The last dispatch that saw the alert.
    cycle: u64,
}

struct RoutedTarget {
    receiver: usize,
    /// `route key:{group labels}`
    key: String,
    group_labels: BTreeMap<String, String>,
}

impl Routed {
    fn new(a: &Alert<'_>, external_labels: &BTreeMap<String, String>, route: &Route) -> Self {
        let labels = sent_labels(a, external_labels);
        let mut targets = vec![];
        route.receivers(&labels, &mut targets);
        let targets = targets
            .into_iter()
            .map(|t| {
                let group_labels: BTreeMap<String, String> =
                    if t.group_by.iter().any(|g| g == "...") {
                        labels.clone()
                    } else {
                        labels
                            .iter()
                            .filter(|(k, _)| t.group_by.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    };
                RoutedTarget {
                    receiver: t.receiver,
                    key: format!("{}:{}", t.route_key, label_string(&group_labels)),
                    group_labels,
                }
            })
            .collect();
        Routed {
            fingerprint: fingerprint(&labels),
            targets,
            cycle: 0,
        }
    }
}

#[cfg(test)]
mod tests;
