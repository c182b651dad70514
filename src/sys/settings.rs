//! The checked `$SYS` settings of one broker. `sys` owns the type (as a Prometheus component
//! owns its config struct); `config` builds it from the YAML (`brokers[].sys`, `sys_profiles`).

use super::profile::ProfileSet;
use std::sync::Arc;

/// How one broker's `$SYS` tree is read: built by `config` from `brokers[].sys` and the
/// profiles of `sys_profiles`; equality is what a reload compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysConfig {
    pub enabled: bool,
    /// The subscription filter, always `<prefix>#`.
    pub topic: String,
    /// `auto` or the name of a built-in or `sys_profiles` profile.
    pub profile: String,
    /// Every profile the config can name (shared by all brokers).
    pub profiles: Arc<ProfileSet>,
    /// Cap on series whose labels come from the broker (unknown topics, bridges).
    pub max_series: usize,
}

impl SysConfig {
    /// The filter without its trailing `#`: what profile patterns are relative to.
    pub fn prefix(&self) -> &str {
        self.topic.strip_suffix('#').unwrap_or(&self.topic)
    }
}
