//! The endpoint's security at run time: the web config (`config::web`) as currently on disk,
//! re-read when the file or a file it names (certificate, key, client CA) changes (a broken file keeps the last good one, logs the error and
//! sets `mqtt_sentinel_web_config_last_reload_successful 0`), and basic-auth checks.
//!
//! bcrypt is slow on purpose (cost 10 ≈ 50–100 ms), so a verified user/password pair is
//! remembered by its SHA-256 (with the hash it was checked against) and every verification runs
//! on the blocking pool, never on the runtime thread. An unknown user is checked against a
//! dummy hash, so the time of a refusal does not tell which users exist.

use crate::config::watched::{Stamp, Status, stamp};
use crate::config::web::{self, WebConfig, WebFile};
use base64::Engine as _;
use prometheus_client::metrics::gauge::Gauge;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tracing::{error, info};

/// Pairs remembered at most; the set is cleared when full.
const CACHE: usize = 256;
/// bcrypt("", cost 10): what an unknown user's password is checked against.
const DUMMY_HASH: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

pub struct Web {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    /// The web config file and every file it names, with their stamps when last read.
    watched: Mutex<Vec<(PathBuf, Option<Stamp>)>>,
    /// Per file field (`tls_server_config.cert_file`): what `mqtt_sentinel_file_*` shows.
    statuses: Mutex<BTreeMap<String, Arc<Status>>>,
    verified: Mutex<HashSet<[u8; 32]>>,
    reload_ok: Gauge,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("path", &self.path).finish()
    }
}

/// The files a web config was built from, with their stamps before they were read.
fn watch_list(files: &[WebFile]) -> Vec<(PathBuf, Option<Stamp>)> {
    files.iter().map(|f| (f.path.clone(), f.stamp)).collect()
}

/// The metrics' status of each named file (not the web config file itself).
fn named(files: &[WebFile]) -> impl Iterator<Item = &WebFile> {
    files.iter().filter(|f| !f.field.is_empty())
}

impl Web {
    /// `initial` was loaded from `path` at start (a start-up error is a config error).
    pub fn new(path: Option<PathBuf>, initial: WebConfig, reload_ok: Gauge) -> Self {
        reload_ok.set(1);
        let watched = if path.is_some() {
            watch_list(&initial.files)
        } else {
            vec![]
        };
        let statuses = named(&initial.files)
            .map(|f| (f.field.clone(), Status::register(&f.field, &f.path)))
            .collect();
        Web {
            watched: Mutex::new(watched),
            statuses: Mutex::new(statuses),
            path,
            current: RwLock::new(Arc::new(initial)),
            verified: Mutex::new(HashSet::new()),
            reload_ok,
        }
    }

    /// No web config: plain HTTP, no auth.
    pub fn open(reload_ok: Gauge) -> Self {
        Self::new(
            None,
            WebConfig {
                tls: None,
                client_auth: web::ClientAuth::NoClientCert,
                users: Default::default(),
                headers: vec![],
                files: vec![],
            },
            reload_ok,
        )
    }

    /// The configuration for a new connection, re-reading it if the web config file or any
    /// file it names (`cert_file`, `key_file`, `client_ca_file`) changed, as exporter-toolkit
    /// reads them for every connection. A change that does not load keeps the last good
    /// configuration, logs the error and shows it in `mqtt_sentinel_file_*{field}` (a named
    /// file) and `mqtt_sentinel_web_config_last_reload_successful`.
    pub fn refresh(&self) -> Arc<WebConfig> {
        if let Some(path) = &self.path {
            let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            if watched.iter().any(|(p, s)| stamp(p) != *s) {
                let (files, result) = web::load_tracked(path);
                *watched = watch_list(&files);
                let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
                for f in named(&files) {
                    if statuses
                        .get(&f.field)
                        .is_none_or(|s| s.path() != f.path.as_path())
                    {
                        statuses.insert(f.field.clone(), Status::register(&f.field, &f.path));
                    }
                }
                match result {
                    Ok(w) => {
                        info!(web_config = %path.display(), settings = %w.describe(), "web config reloaded");
                        statuses.retain(|f, _| named(&files).any(|g| g.field == *f));
                        for s in statuses.values() {
                            s.succeeded();
                        }
                        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(w);
                        self.verified
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clear();
                        self.reload_ok.set(1);
                    }
                    Err(e) => {
                        if let Some(s) = statuses.get(&e.path) {
                            s.failed();
                        }
                        error!(error = %e, "web config does not load; keeping the previous one");
                        self.reload_ok.set(0);
                    }
                }
            }
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `authorization` (the header's value) names a configured user with the right
    /// password. Always true when no users are configured.
    pub async fn authorized(&self, cfg: &WebConfig, authorization: Option<&[u8]>) -> bool {
        if cfg.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let (hash, known) = match cfg.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known
            && self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key)
        {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
            && known;
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() >= CACHE {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(header).ok()?;
    let (scheme, b64) = s.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_is_a_hash() {
        assert!(bcrypt::verify("", DUMMY_HASH).is_ok());
    }

    #[test]
    fn credentials() {
        assert_eq!(
            basic_credentials(b"Basic YWxpY2U6czNjcjN0Ok9L"),
            Some(("alice".into(), "s3cr3t:OK".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(b"Basic YWxpY2U="), None, "no colon");
    }

    #[tokio::test]
    async fn users_are_checked_and_remembered() {
        let hash = bcrypt::hash_with_salt("pw", 4, [1u8; 16])
            .unwrap()
            .to_string();
        let cfg = WebConfig {
            tls: None,
            client_auth: web::ClientAuth::NoClientCert,
            users: [("alice".to_owned(), hash)].into(),
            headers: vec![],
            files: vec![],
        };
        let w = Web::open(Gauge::default());
        let h = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(w.authorized(&cfg, Some(h("alice", "pw").as_bytes())).await);
        assert!(
            w.authorized(&cfg, Some(h("alice", "pw").as_bytes())).await,
            "cached"
        );
        assert!(!w.authorized(&cfg, Some(h("alice", "PW").as_bytes())).await);
        assert!(!w.authorized(&cfg, Some(h("bob", "").as_bytes())).await);
        assert!(!w.authorized(&cfg, None).await);
        assert_eq!(w.verified.lock().unwrap().len(), 1);
    }
}
