//! Files the configuration names (secrets, certificates, keys) are used as they are on disk at
//! each use, the way exporter-toolkit re-reads `cert_file` for every TLS handshake: whatever
//! rotates them in place (cert-manager, certbot, a Kubernetes Secret volume swapping its
//! `..data` symlink) takes effect at the next connection, handshake or delivery without a
//! reload.
//!
//! A [`WatchedFile`] keeps the last good value. Each [`WatchedFile::get`] compares the file's
//! stamp (device, inode, size, mtime and ctime of the file the path resolves to, following
//! symlinks) with the one it last read; only a changed stamp reads the file again. A file that
//! became unreadable or invalid keeps the last good value, logs the error once per change and
//! shows it in one metric family for every kind of file, labelled by the configuration field
//! (`brokers[0].password_file`, `web.tls_server_config.cert_file`, …):
//!
//! - `mqtt_sentinel_file_last_reload_successful{field}`: 1 if the file as on disk is in use,
//!   0 if it does not read or parse and the last good content is still used;
//! - `mqtt_sentinel_file_last_reload_success_timestamp_seconds{field}`: Unix time of the last
//!   good read;
//! - `mqtt_sentinel_file_reload_failures_total{field}`: reads that failed (one per change of
//!   the file, not one per use).
//!
//! The names follow Prometheus' own `prometheus_config_last_reload_successful` family.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{error, info};

/// What identifies one version of a file: (device, inode, size, mtime ns, ctime ns) of the
/// file a path resolves to. A Kubernetes `..data` swap changes the inode, an in-place copy
/// the mtime/ctime; `None` when the file cannot be stat'ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64, u64, u64, i128, i128);

/// The stamp of `path` now (symlinks followed); `None` if it cannot be stat'ed.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Stamp(
            m.dev(),
            m.ino(),
            m.len(),
            ns(m.mtime(), m.mtime_nsec()),
            ns(m.ctime(), m.ctime_nsec()),
        ))
    }
    #[cfg(not(unix))]
    {
        let t = m
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos() as i128;
        Some(Stamp(0, 0, m.len(), t, 0))
    }
}

/// Turns a file's bytes into the value in use; the error says what is wrong without quoting
/// the content (it may be a secret).
pub type Parser<T> = Arc<dyn Fn(&[u8]) -> Result<T, String> + Send + Sync>;

/// A file named by the configuration, with its last good value. Cheap to clone (shared).
/// Equality is (field, path): a reload that names the same file keeps the broker as it is.
pub struct WatchedFile<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WatchedFile<T> {
    fn clone(&self) -> Self {
        WatchedFile {
            inner: self.inner.clone(),
        }
    }
}

impl<T> PartialEq for WatchedFile<T> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.status.field == other.inner.status.field && self.inner.path == other.inner.path
    }
}

impl<T> Eq for WatchedFile<T> {}

impl<T> std::fmt::Debug for WatchedFile<T> {
    // never the value
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedFile")
            .field("field", &self.inner.status.field)
            .field("path", &self.inner.path)
            .finish()
    }
}

struct Inner<T> {
    path: PathBuf,
    parse: Parser<T>,
    state: Mutex<State<T>>,
    status: Arc<Status>,
}

struct State<T> {
    stamp: Option<Stamp>,
    good: Arc<T>,
    /// The value before `good`, kept alive a little longer: a connect that was handed it
    /// (a [`PemFile`] copy) may still be reading it.
    previous: Option<Arc<T>>,
}

/// What the metrics show for one field.
#[derive(Debug)]
pub struct Status {
    field: String,
    path: PathBuf,
    /// Registration order: when two live files claim a field (just after a reload), the
    /// newer one is shown.
    seq: u64,
    ok: AtomicU64,
    failures: AtomicU64,
    /// f64 bits.
    success_time: AtomicU64,
}

impl Status {
    /// The status of `field` naming `path`, shown in the metrics while the returned `Arc`
    /// lives. A live one for the same field and file is shared: a reload that keeps a broker
    /// keeps the broker's own copy of the file in use, and both report to one status.
    pub fn register(field: &str, path: &Path) -> Arc<Status> {
        let mut all = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        if let Some(s) = all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| s.field == field && s.path == path)
        {
            return s;
        }
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(Status {
            field: field.to_owned(),
            path: path.to_path_buf(),
            seq,
            ok: AtomicU64::new(1),
            failures: AtomicU64::new(0),
            success_time: AtomicU64::new(unix_now().to_bits()),
        });
        all.push(Arc::downgrade(&s));
        s
    }

    /// The file as on disk is in use.
    pub fn succeeded(&self) {
        self.ok.store(1, Ordering::Relaxed);
        self.success_time
            .store(unix_now().to_bits(), Ordering::Relaxed);
    }

    /// The file does not read or parse; the last good content stays in use.
    pub fn failed(&self) {
        self.ok.store(0, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The configuration field path, the metrics' `field` label.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The file as the configuration names it (relative names resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

static REGISTERED: Mutex<Vec<Weak<Status>>> = Mutex::new(Vec::new());
static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl<T> WatchedFile<T> {
    /// Read and parse `path` now (configuration time). The error is the reason only: the
    /// caller names file, line and field.
    pub fn load(field: &str, path: PathBuf, parse: Parser<T>) -> Result<Self, String> {
        let before = stamp(&path);
        let value = read(&path, &parse)?;
        let status = Status::register(field, &path);
        // A shared status (a reload naming the same file) learns that the file reads well now.
        status.succeeded();
        Ok(WatchedFile {
            inner: Arc::new(Inner {
                path,
                parse,
                state: Mutex::new(State {
                    stamp: before,
                    good: Arc::new(value),
                    previous: None,
                }),
                status,
            }),
        })
    }

    /// The configuration field this file comes from (`brokers[0].password_file`).
    pub fn field(&self) -> &str {
        &self.inner.status.field
    }

    /// The file as the configuration names it (relative names resolved).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The value as the file holds it now, or the last good one if it no longer reads or
    /// parses (logged once per change, and counted in the metrics).
    pub fn get(&self) -> Arc<T> {
        let i = &*self.inner;
        let now = stamp(&i.path);
        let mut st = i.state.lock().unwrap_or_else(|p| p.into_inner());
        if now != st.stamp {
            // The stamp is taken before reading: a change while reading is seen next time.
            st.stamp = now;
            match read(&i.path, &i.parse) {
                Ok(v) => {
                    st.previous = Some(std::mem::replace(&mut st.good, Arc::new(v)));
                    i.status.succeeded();
                    info!(field = %i.status.field, file = %i.path.display(), "file changed; using its new content");
                }
                Err(e) => {
                    i.status.failed();
                    error!(field = %i.status.field, file = %i.path.display(), error = %e,
                           "file does not read or is invalid; keeping its last good content");
                }
            }
        }
        st.good.clone()
    }
}

fn read<T>(path: &Path, parse: &Parser<T>) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    parse(&bytes)
}

/// A text secret: UTF-8, surrounding whitespace and line ends removed, not empty.
pub fn text_secret(bytes: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let s = s.trim();
    if s.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(s.to_owned())
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// One or more certificates (a CA bundle, a certificate chain; other blocks such as a
    /// key in the same file are allowed).
    Certificates,
    /// A private key (PKCS#1, PKCS#8 or SEC1), unencrypted.
    PrivateKey,
}

/// A PEM file's validated content, for a TLS library that only takes file names (Paho C and
/// OpenSSL): on Linux it is also held in an in-memory file (memfd), and
/// [`PemFile::tls_path`] names that copy, so the library reads exactly the content that was
/// checked, also after the file on disk became invalid, and no copy of a key touches a disk.
pub struct PemFile {
    copy: Option<std::fs::File>,
}

impl PemFile {
    /// `/proc/self/fd/<n>` of the in-memory copy; `original` where there is none (not Linux,
    /// or memfd_create refused).
    pub fn tls_path(&self, original: &Path) -> PathBuf {
        #[cfg(target_os = "linux")]
        if let Some(f) = &self.copy {
            use std::os::fd::AsRawFd;
            return PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        }
        original.to_path_buf()
    }
}

/// Checks PEM content of `kind` and keeps it as a [`PemFile`].
pub fn pem(kind: PemKind) -> Parser<PemFile> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    Arc::new(move |b: &[u8]| {
        match kind {
            PemKind::Certificates => {
                let n = CertificateDer::pem_slice_iter(b)
                    .try_fold(0usize, |n, c| c.map(|_| n + 1))
                    .map_err(|e| format!("invalid PEM certificate: {e}"))?;
                if n == 0 {
                    return Err("no PEM certificate in the file".into());
                }
            }
            PemKind::PrivateKey => {
                PrivateKeyDer::from_pem_slice(b)
                    .map_err(|e| format!("no usable PEM private key: {e}"))?;
            }
        }
        Ok(PemFile {
            copy: memory_copy(b),
        })
    })
}

#[cfg(target_os = "linux")]
fn memory_copy(bytes: &[u8]) -> Option<std::fs::File> {
    use std::io::Write as _;
    let fd = rustix::fs::memfd_create("mqtt-sentinel-tls", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).ok()?;
    Some(f)
}

#[cfg(not(target_os = "linux"))]
fn memory_copy(_: &[u8]) -> Option<std::fs::File> {
    None
}

/// Encodes every live [`Status`] as the three `mqtt_sentinel_file_*` families.
#[derive(Debug, Default)]
pub struct FilesCollector;

impl Collector for FilesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // One status per field: the newest live one.
        let mut by_field: BTreeMap<String, Arc<Status>> = BTreeMap::new();
        {
            let all = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
            for s in all.iter().filter_map(Weak::upgrade) {
                match by_field.get(&s.field) {
                    Some(old) if old.seq > s.seq => {}
                    _ => {
                        by_field.insert(s.field.clone(), s);
                    }
                }
            }
        }
        if by_field.is_empty() {
            return Ok(());
        }
        let label = |s: &Status| [("field".to_owned(), s.field.clone())];
        let mut e = encoder.encode_descriptor(
            "mqtt_sentinel_file_last_reload_successful",
            "1 if the file a configuration field names (secret, certificate, key) is in use as on disk, 0 if it no longer reads or is invalid and its last good content is used",
            None,
            MetricType::Gauge,
        )?;
        for s in by_field.values() {
            ConstGauge::new(s.ok.load(Ordering::Relaxed) as i64)
                .encode(e.encode_family(&label(s))?)?;
        }
        let mut e = encoder.encode_descriptor(
            "mqtt_sentinel_file_last_reload_success_timestamp_seconds",
            "Unix time the file a configuration field names was last read successfully",
            None,
            MetricType::Gauge,
        )?;
        for s in by_field.values() {
            ConstGauge::new(f64::from_bits(s.success_time.load(Ordering::Relaxed)))
                .encode(e.encode_family(&label(s))?)?;
        }
        let mut e = encoder.encode_descriptor(
            "mqtt_sentinel_file_reload_failures",
            "Reads of a changed file named by a configuration field that failed (unreadable or invalid); the last good content stayed in use",
            None,
            MetricType::Counter,
        )?;
        for s in by_field.values() {
            ConstCounter::new(s.failures.load(Ordering::Relaxed))
                .encode(e.encode_family(&label(s))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_good_value_and_follows_symlink_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/pw"), "one\n").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/pw", d.join("pw")).unwrap();
        let parse: Parser<String> = Arc::new(text_secret);
        let w = WatchedFile::load("test.password_file", d.join("pw"), parse).unwrap();
        assert_eq!(*w.get(), "one");
        // Kubernetes: new dir, new symlink renamed over ..data
        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/pw"), "two\n").unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert_eq!(*w.get(), "two");
        assert_eq!(w.inner.status.ok.load(Ordering::Relaxed), 1);
        // an empty file is invalid: the last good value stays
        std::fs::write(d.join("..v2/pw"), "").unwrap();
        assert_eq!(*w.get(), "two");
        assert_eq!(*w.get(), "two");
        assert_eq!(w.inner.status.ok.load(Ordering::Relaxed), 0);
        assert_eq!(
            w.inner.status.failures.load(Ordering::Relaxed),
            1,
            "once per change"
        );
        // gone: still the last good value
        std::fs::remove_file(d.join("..v2/pw")).unwrap();
        assert_eq!(*w.get(), "two");
        std::fs::write(d.join("..v2/pw"), "three").unwrap();
        assert_eq!(*w.get(), "three");
        assert_eq!(w.inner.status.ok.load(Ordering::Relaxed), 1);
        assert!(!format!("{w:?}").contains("three"));

        // A reload names the same file for the same field: one status for both copies.
        let again =
            WatchedFile::load("test.password_file", d.join("pw"), Arc::new(text_secret)).unwrap();
        assert!(Arc::ptr_eq(&w.inner.status, &again.inner.status));
        std::fs::write(d.join("..v2/pw"), "").unwrap();
        assert_eq!(*w.get(), "three", "the copy a kept broker uses");
        assert_eq!(again.inner.status.ok.load(Ordering::Relaxed), 0);
    }
}
