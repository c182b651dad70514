//! The ONLY place configuration becomes Paho options.
//!
//! The Paho rules (ARCHITECTURE.md) that live here: persistence is always `None` (Paho otherwise writes
//! files into the working directory, which breaks read-only containers); clean session
//! (except for the session probe: [`persistent_session_options`]); MQTT
//! v5 unless configured otherwise (or refused, with `protocol: auto`); Paho's automatic reconnect stays off because we own
//! reconnects (Paho does not restore subscriptions).

use crate::config::{BrokerConfig, Protocol, Transport};
use paho_mqtt as paho;
use std::time::Duration;

/// Let go of a Paho client safely.
///
/// Every Paho token holds a clone of its client and is completed, and dropped, on Paho's own
/// thread while Paho's global lock is held. If that token held the LAST clone, the drop runs
/// `MQTTAsync_destroy` inside the lock it needs: a self-deadlock that stops every MQTT client
/// of the process (seen in testing: an abandoned connect to a frozen broker). So a client is
/// kept for `grace`, longer than anything Paho can still have pending for it (its whole-second
/// connect timeout), and then destroyed on the blocking pool, never on the runtime thread.
pub fn retire(client: paho::AsyncClient, grace: Duration) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                tokio::time::sleep(grace).await;
                drop(tokio::task::spawn_blocking(move || drop(client)));
            });
        }
        Err(_) => {
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                drop(client);
            });
        }
    }
}

/// How long to keep a client after we are done with it (see [`retire`]).
pub fn retire_grace(cfg: &BrokerConfig) -> Duration {
    paho_connect_timeout(cfg) + Duration::from_secs(5)
}

/// Paho counts whole seconds (500 ms would become 0, "no timeout"); callers enforce the exact
/// deadline themselves.
fn paho_connect_timeout(cfg: &BrokerConfig) -> Duration {
    Duration::from_secs(cfg.connect_timeout.as_secs_f64().ceil().max(1.0) as u64)
}

/// Paho pings after `k` without traffic and gives up `k` after an unanswered ping, checking on
/// a one-second timer: a dead link is noticed after up to 2k + 1 s. Asking Paho for one second
/// less keeps that within 2.5 × the configured keep-alive (the promise in the README) for every
/// keep-alive from 2 s up; the broker just sees slightly more frequent pings.
fn paho_keep_alive(k: Duration) -> Duration {
    if k >= Duration::from_secs(2) {
        k - Duration::from_secs(1)
    } else {
        k
    }
}

/// Client creation options for `client_id` speaking `protocol` (the version a
/// [`super::negotiate::Negotiation`] chose; `Auto` means MQTT 5).
pub fn create_options(
    cfg: &BrokerConfig,
    protocol: Protocol,
    client_id: &str,
) -> paho::CreateOptions {
    // Paho fixes the version at creation: a 3.1.1 fallback needs a new client.
    let b = match protocol {
        Protocol::V311 => paho::CreateOptionsBuilder::new_v3(),
        Protocol::V5 | Protocol::Auto => paho::CreateOptionsBuilder::new(),
    };
    b.server_uri(cfg.url.paho_uri())
        .client_id(client_id)
        .persistence(None)
        // We never publish while disconnected; keep Paho's offline buffer at its minimum.
        .max_buffered_messages(1)
        .finalize()
}

/// Connect options (credentials, TLS, keep-alive, timeouts) for a CONNECT in `protocol`.
pub fn connect_options(
    cfg: &BrokerConfig,
    protocol: Protocol,
) -> Result<paho::ConnectOptions, paho::Error> {
    connect_builder(cfg, protocol).map(|b| b.finalize())
}

/// How a session probe's client asks for a session that outlives its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// MQTT 5: Clean Start 1 (drop what an earlier run left) with Session Expiry Interval
    /// `expiry` (§3.1.2.4, §3.1.2.11.2). MQTT 3.1.1 cannot start over and persist at once:
    /// Clean Session 0 (§3.1.2.4).
    Start { expiry: Duration },
    /// Resume: MQTT 5 Clean Start 0 with Session Expiry Interval `expiry`; 3.1.1 Clean
    /// Session 0.
    Resume { expiry: Duration },
}

/// [`connect_options`] for a client whose session must outlive its connection (the
/// session probe); `expiry` is sent in whole seconds, rounded up.
pub fn persistent_session_options(
    cfg: &BrokerConfig,
    protocol: Protocol,
    persist: Persist,
) -> Result<paho::ConnectOptions, paho::Error> {
    let mut b = connect_builder(cfg, protocol)?;
    let (clean_start, expiry) = match persist {
        Persist::Start { expiry } => (true, expiry),
        Persist::Resume { expiry } => (false, expiry),
    };
    if protocol == Protocol::V311 {
        b.clean_session(false);
    } else {
        let secs = crate::config::mqtt_seconds(expiry);
        let mut props = paho::Properties::new();
        props.push_u32(paho::PropertyCode::SessionExpiryInterval, secs)?;
        b.clean_start(clean_start).properties(props);
    }
    Ok(b.finalize())
}

fn connect_builder(
    cfg: &BrokerConfig,
    protocol: Protocol,
) -> Result<paho::ConnectOptionsBuilder, paho::Error> {
    let ws = matches!(cfg.url.transport, Transport::Ws | Transport::Wss);
    let v311 = protocol == Protocol::V311;
    let mut b = match (v311, ws) {
        (false, false) => paho::ConnectOptionsBuilder::new_v5(),
        (false, true) => paho::ConnectOptionsBuilder::new_ws_v5(),
        (true, false) => paho::ConnectOptionsBuilder::new_v3(),
        (true, true) => paho::ConnectOptionsBuilder::new_ws(),
    };
    b.keep_alive_interval(paho_keep_alive(cfg.keep_alive))
        .connect_timeout(paho_connect_timeout(cfg));
    if v311 {
        b.clean_session(true);
    } else {
        b.clean_start(true);
    }
    if let Some(u) = &cfg.username {
        b.user_name(u.as_str());
    }
    if let Some(p) = &cfg.password {
        // A password_file as it is now (see `config::watched`).
        b.password(p.current().expose());
    }
    if cfg.url.is_tls() {
        let mut ssl = paho::SslOptionsBuilder::new();
        match &cfg.tls {
            Some(t) => {
                // Paho (OpenSSL) reads these at each connect; it gets in-memory copies of
                // the files' current, else last good, content (see `config::watched`).
                if let Some(ca) = &t.ca_file {
                    ssl.trust_store(ca.get().tls_path(ca.path()))?;
                }
                if let Some(cert) = &t.cert_file {
                    ssl.key_store(cert.get().tls_path(cert.path()))?;
                }
                if let Some(key) = &t.key_file {
                    ssl.private_key(key.get().tls_path(key.path()))?;
                }
                ssl.enable_server_cert_auth(!t.insecure_skip_verify)
                    .verify(!t.insecure_skip_verify);
            }
            None => {
                ssl.enable_server_cert_auth(true).verify(true);
            }
        }
        b.ssl_options(ssl.finalize());
    }
    Ok(b)
}
