//! The ONLY place configuration becomes Paho options.
//!
//! Rules from DESIGN.md that live here: persistence is always `None` (Paho otherwise writes
//! files into the working directory, which breaks read-only containers); clean session; MQTT
//! v5 unless configured otherwise; Paho's automatic reconnect stays off because we own
//! reconnects (Paho does not restore subscriptions).

use crate::config::{BrokerConfig, Protocol, Transport};
use paho_mqtt as paho;

/// Client creation options for `client_id`.
pub fn create_options(cfg: &BrokerConfig, client_id: &str) -> paho::CreateOptions {
    let b = match cfg.protocol {
        Protocol::V5 => paho::CreateOptionsBuilder::new(),
        Protocol::V311 => paho::CreateOptionsBuilder::new_v3(),
    };
    b.server_uri(cfg.url.paho_uri())
        .client_id(client_id)
        .persistence(None)
        // We never publish while disconnected; keep Paho's offline buffer at its minimum.
        .max_buffered_messages(1)
        .finalize()
}

/// Connect options (credentials, TLS, keep-alive, timeouts).
pub fn connect_options(cfg: &BrokerConfig) -> Result<paho::ConnectOptions, paho::Error> {
    let ws = matches!(cfg.url.transport, Transport::Ws | Transport::Wss);
    let mut b = match (cfg.protocol, ws) {
        (Protocol::V5, false) => paho::ConnectOptionsBuilder::new_v5(),
        (Protocol::V5, true) => paho::ConnectOptionsBuilder::new_ws_v5(),
        (Protocol::V311, false) => paho::ConnectOptionsBuilder::new_v3(),
        (Protocol::V311, true) => paho::ConnectOptionsBuilder::new_ws(),
    };
    b.keep_alive_interval(cfg.keep_alive)
        .connect_timeout(cfg.connect_timeout);
    match cfg.protocol {
        Protocol::V5 => b.clean_start(true),
        Protocol::V311 => b.clean_session(true),
    };
    if let Some(u) = &cfg.username {
        b.user_name(u.as_str());
    }
    if let Some(p) = &cfg.password {
        b.password(p.expose());
    }
    if cfg.url.is_tls() {
        let mut ssl = paho::SslOptionsBuilder::new();
        match &cfg.tls {
            Some(t) => {
                if let Some(ca) = &t.ca_file {
                    ssl.trust_store(ca)?;
                }
                if let Some(cert) = &t.cert_file {
                    ssl.key_store(cert)?;
                }
                if let Some(key) = &t.key_file {
                    ssl.private_key(key)?;
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
    Ok(b.finalize())
}
