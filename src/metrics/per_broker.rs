//! Per-broker families, removed by construction: [`PerBrokerRegistrar::family`] is the one
//! way to make one, and enrols it for [`super::Metrics::forget_broker`], which removes every
//! series it made for that broker; [`Retired`] keeps the handles of a removed broker from
//! making new ones.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A label set whose series belong to one broker: it has a `broker` label.
pub trait BrokerLabelled {
    /// The value of the `broker` label.
    fn broker(&self) -> &str;
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A family of per-broker series that remembers every label set it made (a `Family` cannot
/// list its label sets), so that [`super::Metrics::forget_broker`] removes them all. Made only by
/// [`PerBrokerRegistrar::family`]; clones share the family and what it remembers.
#[derive(Debug)]
pub struct PerBroker<L, M> {
    family: Family<L, M, fn() -> M>,
    made: Arc<Mutex<HashSet<L>>>,
}

impl<L, M> Clone for PerBroker<L, M> {
    fn clone(&self) -> Self {
        Self {
            family: self.family.clone(),
            made: self.made.clone(),
        }
    }
}

impl<L: Clone + Hash + Eq, M: Clone> PerBroker<L, M> {
    /// The series of `labels`, created at its zero value on first use.
    pub fn get_or_create(&self, labels: &L) -> M {
        let mut made = lock(&self.made);
        if !made.contains(labels) {
            made.insert(labels.clone());
        }
        self.family.get_or_create_owned(labels)
    }

    /// Apply `f` to the series of `labels` (created at its zero value on first use), unless
    /// `retired`: a task of a removed broker that is still finishing (a probe run, a connect
    /// diagnosis) cannot bring one of its series back.
    pub fn update(&self, labels: &L, retired: &Retired, f: impl FnOnce(&M)) {
        // Checked under the lock `forget` takes after setting the flag: either this sees the
        // flag, or `forget` sees the series.
        let mut made = lock(&self.made);
        if retired.is_set() {
            return;
        }
        if !made.contains(labels) {
            made.insert(labels.clone());
        }
        f(&self.family.get_or_create(labels));
    }

    /// Remove the series of `labels` (it comes back with the next `get_or_create`).
    pub fn remove(&self, labels: &L) {
        let mut made = lock(&self.made);
        made.remove(labels);
        self.family.remove(labels);
    }
}

impl<L: Clone + Hash + Eq> PerBroker<L, Counter> {
    /// Add 1 to the series of `labels`, unless `retired` (see [`Self::update`]).
    pub fn inc(&self, labels: &L, retired: &Retired) {
        self.update(labels, retired, |c| {
            c.inc();
        });
    }
}

/// Set by [`super::Metrics::forget_broker`] for the handles it made for that broker, so that
/// [`PerBroker::update`] through them makes no series any more. A broker started again under
/// the same name gets a new one.
#[derive(Debug, Clone, Default)]
pub struct Retired(Arc<AtomicBool>);

impl Retired {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    pub(super) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What [`super::Metrics::forget_broker`] calls on every per-broker family.
pub(super) trait ForgetBroker: std::fmt::Debug + Send + Sync {
    /// Remove every series whose `broker` label is `broker`.
    fn forget(&self, broker: &str);
}

impl<L, M> ForgetBroker for PerBroker<L, M>
where
    L: BrokerLabelled + Clone + Hash + Eq + std::fmt::Debug + Send + Sync,
    M: std::fmt::Debug + Send + Sync,
{
    fn forget(&self, broker: &str) {
        lock(&self.made).retain(|l| {
            let mine = l.broker() == broker;
            if mine {
                self.family.remove(l);
            }
            !mine
        });
    }
}

/// Registers metrics: per-broker families through [`Self::family`], the one way to make one,
/// which enrols each for [`super::Metrics::forget_broker`].
pub(super) struct PerBrokerRegistrar<'a> {
    pub(super) reg: &'a mut Registry,
    pub(super) families: Vec<Arc<dyn ForgetBroker>>,
}

impl PerBrokerRegistrar<'_> {
    /// A new per-broker family `name` whose series start as `new()`, registered and enrolled.
    pub(super) fn family<L, M>(&mut self, name: &str, help: &str, new: fn() -> M) -> PerBroker<L, M>
    where
        L: Clone + Hash + Eq,
        Family<L, M, fn() -> M>: Metric,
        PerBroker<L, M>: ForgetBroker + 'static,
    {
        let f = PerBroker {
            family: Family::new_with_constructor(new),
            made: Arc::default(),
        };
        self.reg.register(name, help, f.family.clone());
        self.families.push(Arc::new(f.clone()));
        f
    }
}
