//! The Prometheus exporter-toolkit `web-config.yml`, so the endpoint is secured the way every
//! other exporter in the cluster is: `tls_server_config` (server certificate, optional client
//! certificates against a CA), `basic_auth_users` (bcrypt hashes) and
//! `http_server_config.headers`.
//!
//! TLS is rustls: TLS 1.2 and 1.3 only, with rustls' own cipher suites. Settings that would
//! weaken that or that rustls does not have (`cipher_suites`, `curve_preferences`,
//! `RequestClientCert`, `RequireAnyClientCert`, …) are refused with a message rather than
//! silently ignored.

use super::locate::Locator;
use super::watched::{Stamp, stamp};
use super::{ConfigError, yaml_error};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    // exporter-toolkit settings rustls has no equivalent for: refused when set.
    cipher_suites: Option<serde_yaml::Value>,
    curve_preferences: Option<serde_yaml::Value>,
    prefer_server_cipher_suites: Option<serde_yaml::Value>,
    client_allowed_sans: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// How client certificates are treated (exporter-toolkit names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// A loaded web configuration.
#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub client_auth: ClientAuth,
    /// user → bcrypt hash.
    pub users: BTreeMap<String, String>,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// The files it was built from, the web config file itself first (when loaded from a
    /// file). The server re-reads the config when one of them changes (`crate::web`).
    pub files: Vec<WebFile>,
}

/// A file a web config was built from, with its stamp taken before it was read (so a change
/// while reading is seen at the next connection).
#[derive(Debug, Clone)]
pub struct WebFile {
    /// `tls_server_config.cert_file`, …; empty for the web config file itself.
    pub field: String,
    pub path: PathBuf,
    pub stamp: Option<Stamp>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the hashes
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers.len())
            .finish()
    }
}

impl WebConfig {
    /// One line for `check` and logs: no hashes, no key material.
    pub fn describe(&self) -> String {
        let tls = match (&self.tls, self.client_auth) {
            (None, _) => "off".to_owned(),
            (Some(_), ClientAuth::NoClientCert) => "on".to_owned(),
            (Some(_), a) => format!("on, client certificates {a:?}"),
        };
        let users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        format!(
            "tls {tls}, basic auth {}, {} extra headers",
            if users.is_empty() {
                "off".to_owned()
            } else {
                format!("users {}", users.join(", "))
            },
            self.headers.len()
        )
    }
}

/// Headers exporter-toolkit lets a web config set.
const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// Read and check a web config file; relative paths inside it are relative to the file.
pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
    load_tracked(path).1
}

/// [`load`], and the files the attempt named (field path, path) even when it failed, so a
/// server can retry once one of them changes.
pub fn load_tracked(path: &Path) -> (Vec<WebFile>, Result<WebConfig, ConfigError>) {
    let me = WebFile {
        field: String::new(),
        path: path.to_path_buf(),
        stamp: stamp(path),
    };
    let (name, text) = match super::read_text(path, "web config") {
        Ok(t) => t,
        Err(e) => return (vec![me], Err(e)),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let files = RefCell::new(vec![me]);
    let r = parse_tracked(&text, &name, base, &files);
    (files.into_inner(), r)
}

/// Check web config text; file names inside are relative to `base`.
pub fn parse(text: &str, source_name: &str, base: &Path) -> Result<WebConfig, ConfigError> {
    parse_tracked(text, source_name, base, &RefCell::new(vec![]))
}

fn parse_tracked(
    text: &str,
    source_name: &str,
    base: &Path,
    files: &RefCell<Vec<WebFile>>,
) -> Result<WebConfig, ConfigError> {
    let raw: RawWeb = if text.trim().is_empty() {
        RawWeb::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| yaml_error(source_name, &e))?
    };
    let locator = Locator::new(text);
    let err = |path: &str, message: String| {
        let pos = locator.find(path);
        ConfigError {
            source_name: source_name.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: path.to_owned(),
            message,
        }
    };
    let read = |field: &str, file: &str| -> Result<Vec<u8>, ConfigError> {
        let path = base.join(file);
        files.borrow_mut().push(WebFile {
            field: field.to_owned(),
            stamp: stamp(&path),
            path: path.clone(),
        });
        std::fs::read(path).map_err(|e| err(field, format!("cannot read {file:?}: {e}")))
    };

    let mut users = BTreeMap::new();
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        let at = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            return Err(err(&at, format!("invalid user name {user:?}")));
        }
        // A hash that does not parse would refuse every password: say so now.
        if bcrypt::verify("", &hash).is_err() {
            return Err(err(
                &at,
                "not a bcrypt hash (create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                    .to_owned(),
            ));
        }
        users.insert(user, hash);
    }

    let mut headers = Vec::new();
    let http = raw.http_server_config.unwrap_or_default();
    if http.http2 == Some(true) {
        return Err(err(
            "http_server_config.http2",
            "HTTP/2 is not served; remove the setting or set it to false".to_owned(),
        ));
    }
    for (k, v) in http.headers.unwrap_or_default() {
        let at = format!("http_server_config.headers.{k}");
        let Some(allowed) = ALLOWED_HEADERS.iter().find(|a| a.eq_ignore_ascii_case(&k)) else {
            return Err(err(
                &at,
                format!(
                    "header {k:?} cannot be set; allowed: {}",
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
        };
        let value = hyper::header::HeaderValue::from_str(&v)
            .map_err(|_| err(&at, format!("invalid header value {v:?}")))?;
        let name = hyper::header::HeaderName::from_static(match *allowed {
            "Strict-Transport-Security" => "strict-transport-security",
            "X-Content-Type-Options" => "x-content-type-options",
            "X-Frame-Options" => "x-frame-options",
            "X-XSS-Protection" => "x-xss-protection",
            _ => "content-security-policy",
        });
        headers.push((name, value));
    }

    let (tls, client_auth) = match raw.tls_server_config {
        None => (None, ClientAuth::NoClientCert),
        Some(t) => tls(t, &err, &read)?,
    };
    Ok(WebConfig {
        tls,
        client_auth,
        users,
        headers,
        files: files.borrow().clone(),
    })
}

type Err<'a> = &'a dyn Fn(&str, String) -> ConfigError;
/// Reads a file named in the web config: (field path, file name) → bytes.
type Read<'a> = &'a dyn Fn(&str, &str) -> Result<Vec<u8>, ConfigError>;

fn tls(
    t: RawTls,
    err: Err<'_>,
    read: Read<'_>,
) -> Result<(Option<Arc<ServerConfig>>, ClientAuth), ConfigError> {
    let p = |f: &str| format!("tls_server_config.{f}");
    for (field, set) in [
        ("cipher_suites", t.cipher_suites.is_some()),
        ("curve_preferences", t.curve_preferences.is_some()),
        (
            "prefer_server_cipher_suites",
            t.prefer_server_cipher_suites.is_some(),
        ),
        ("client_allowed_sans", t.client_allowed_sans.is_some()),
    ] {
        if set {
            return Err(err(
                &p(field),
                format!(
                    "{field} is not supported: TLS here is rustls with its own secure suites and groups; remove the setting"
                ),
            ));
        }
    }
    let pem = |field: &str, inline: Option<String>, file: Option<String>| match (inline, file) {
        (Some(_), Some(_)) => Err(err(
            &p(field),
            format!("set {field} or {field}_file, not both"),
        )),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(f)) => read(&p(&format!("{field}_file")), &f).map(Some),
        (None, None) => Ok(None),
    };
    let cert = pem("cert", t.cert, t.cert_file)?
        .ok_or_else(|| err(&p("cert_file"), "a server certificate is required".into()))?;
    let key = pem("key", t.key, t.key_file)?
        .ok_or_else(|| err(&p("key_file"), "a private key is required".into()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| err(&p("cert_file"), format!("invalid PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(err(&p("cert_file"), "no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| err(&p("key_file"), format!("invalid PEM private key: {e}")))?;

    let version = |field: &str, v: Option<String>| -> Result<Option<u8>, ConfigError> {
        match v.as_deref() {
            None => Ok(None),
            // rustls has nothing below 1.2: asking for 1.0/1.1 as a minimum still gets 1.2.
            Some("TLS10") | Some("TLS11") | Some("TLS12") => Ok(Some(2)),
            Some("TLS13") => Ok(Some(3)),
            Some(s) => Err(err(
                &p(field),
                format!("unknown TLS version {s:?}: expected TLS10, TLS11, TLS12 or TLS13"),
            )),
        }
    };
    let min = version("min_version", t.min_version)?.unwrap_or(2);
    let max = version("max_version", t.max_version)?.unwrap_or(3);
    if min > max {
        return Err(err(
            &p("min_version"),
            "min_version is above max_version".into(),
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let auth = match t.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(s @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            return Err(err(
                &p("client_auth_type"),
                format!(
                    "{s} is not supported: a client certificate nobody verifies proves nothing; use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                ),
            ));
        }
        Some(s) => {
            return Err(err(
                &p("client_auth_type"),
                format!(
                    "unknown client_auth_type {s:?}: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            ));
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(&p("min_version"), format!("{e}")))?;
    let builder = match auth {
        ClientAuth::NoClientCert => {
            if t.client_ca_file.is_some() || t.client_ca.is_some() {
                return Err(err(
                    &p("client_ca_file"),
                    "a client CA without client_auth_type verifies nothing; set client_auth_type: RequireAndVerifyClientCert".into(),
                ));
            }
            builder.with_no_client_auth()
        }
        _ => {
            let ca = pem("client_ca", t.client_ca, t.client_ca_file)?.ok_or_else(|| {
                err(
                    &p("client_ca_file"),
                    "client certificates are verified against client_ca_file, which is missing"
                        .into(),
                )
            })?;
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                let c = c.map_err(|e| err(&p("client_ca_file"), format!("invalid PEM: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| err(&p("client_ca_file"), format!("unusable CA: {e}")))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::VerifyClientCertIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| err(&p("client_ca_file"), format!("{e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| {
        err(
            &p("key_file"),
            format!("certificate and key do not fit: {e}"),
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Some(Arc::new(cfg)), auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_are_named_with_positions() {
        let dir = Path::new(".");
        for (yaml, want) in [
            (
                "basic_auth_users:\n  alice: plain-text\n",
                "w.yml:2:10: basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "w.yml:4:3: tls_server_config.cipher_suites: cipher_suites is not supported",
            ),
            (
                "http_server_config:\n  headers:\n    Server: nginx\n",
                "w.yml:3:13: http_server_config.headers.Server: header \"Server\" cannot be set",
            ),
            (
                "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: b\n",
                "w.yml:2:14: tls_server_config.cert_file: cannot read \"/nonexistent.pem\"",
            ),
            (
                "tls_sever_config: {}\n",
                "w.yml:1:1: tls_sever_config: unknown field",
            ),
        ] {
            let e = parse(yaml, "w.yml", dir).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}\nwanted {want}");
        }
    }

    #[test]
    fn users_and_headers() {
        // htpasswd -nbBC 4 "" secret
        let hash = bcrypt::hash_with_salt("secret", 4, [7u8; 16])
            .unwrap()
            .to_string();
        let w = parse(
            &format!("basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    x-frame-options: deny\n"),
            "w.yml",
            Path::new("."),
        )
        .unwrap();
        assert!(bcrypt::verify("secret", &w.users["alice"]).unwrap());
        assert_eq!(w.headers[0].0.as_str(), "x-frame-options");
        assert!(!format!("{w:?}").contains(&hash));
        assert_eq!(
            w.describe(),
            "tls off, basic auth users alice, 1 extra headers"
        );
    }
}
