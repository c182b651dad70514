//! Broker and probe addresses: what a URL means and what is dialled for it.
//!
//! The meaning is the Eclipse Paho C client's (the library that dials), read from its
//! source (1.3.x, `MQTTAsyncUtils.c` `MQTTAsync_connecting`, `MQTTProtocolOut.c`
//! `MQTTProtocol_addressPort`, `WebSocket.c` `WebSocket_connect`):
//!
//! - schemes `mqtt`/`tcp` are MQTT over TCP, `mqtts`/`ssl`/`tls` MQTT over TLS, `ws` MQTT
//!   over WebSocket, `wss` over WebSocket over TLS;
//! - a missing port is 1883 (`mqtt`), 8883 (`mqtts`), 80 (`ws`) and 443 (`wss`)
//!   (`MQTT_DEFAULT_PORT`, `SECURE_MQTT_DEFAULT_PORT`, `WS_DEFAULT_PORT`, `WSS_DEFAULT_PORT`).
//!   Brokers' own WebSocket ports differ (mosquitto usually 8080 or 9001, EMQX 8083/8084,
//!   HiveMQ 8000), so a `ws`/`wss` URL normally names its port;
//! - for `ws`/`wss`, everything after `host:port` (path and query) is the HTTP request target
//!   of the upgrade, sent verbatim; no path at all means `/mqtt` (Paho's default, also EMQX's
//!   and HiveMQ's endpoint), while an explicit `/` means `/` (mosquitto accepts any path);
//! - for `mqtt`/`mqtts` a path is ignored by Paho but means a *topic* to `mosquitto_sub -L`,
//!   so it is refused rather than silently dropped (a lone trailing `/` is accepted);
//! - an IPv6 literal is written in brackets, `mqtt://[::1]:1883`. Paho verifies a TLS
//!   certificate against `[::1` (bracket included), so `mqtts`/`wss` to an IPv6 literal
//!   works only with `insecure_skip_verify` (see [`BrokerUrl::unverifiable_by_paho`]).
//!
//! Paho finds the port after the *last* `:` of the address, so a `ws` request target that
//! contains `:` would be misread as a port: such URLs are refused with that reason.

use std::fmt;

/// Where a broker listens. Only the parts Paho needs are kept; credentials in the URL are
/// refused at load time so they cannot leak into labels or logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub transport: Transport,
    /// Host name or IP literal, IPv6 without brackets (`::1`).
    pub host: String,
    pub port: u16,
    /// WebSocket upgrade request target (path and query, `/mqtt` when the URL has no path);
    /// empty for TCP and TLS.
    pub path: String,
}

/// How the MQTT packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `mqtt://`, `tcp://`
    Tcp,
    /// `mqtts://`, `ssl://`, `tls://`
    Tls,
    /// `ws://`
    Ws,
    /// `wss://`
    Wss,
}

impl Transport {
    /// Paho's default port for the transport (see the module docs).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tcp => 1883,
            Transport::Tls => 8883,
            Transport::Ws => 80,
            Transport::Wss => 443,
        }
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

/// The request target Paho sends when a `ws`/`wss` URL has no path.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl BrokerUrl {
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls | Transport::Wss)
    }

    /// The URI in the form the Paho C library understands: always with an explicit port and,
    /// for WebSocket, an explicit request target, so nothing is left to Paho's defaults.
    pub fn paho_uri(&self) -> String {
        let scheme = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Tls => "ssl",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// Whether the host is an IPv6 literal (`[::1]` in the URL).
    pub fn is_ipv6_literal(&self) -> bool {
        self.host.contains(':')
    }

    /// Why Paho cannot verify this URL's server certificate, if it cannot: Paho C 1.3
    /// (`SSLSocket_connect`) checks the certificate against the address with its leading `[`
    /// (`[::1`), which no certificate matches, so a verified `mqtts`/`wss` connection to an
    /// IPv6 literal always fails.
    pub fn unverifiable_by_paho(&self) -> Option<String> {
        (self.is_tls() && self.is_ipv6_literal()).then(|| {
            format!(
                "the Paho C client cannot verify a certificate for an IPv6 address (it checks \"[{}\"): use a host name that resolves to it, or set tls.insecure_skip_verify",
                self.host
            )
        })
    }

    /// `host:port`, an IPv6 host in brackets (as in a URL and the HTTP `Host` header).
    pub fn authority(&self) -> String {
        if self.is_ipv6_literal() {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The canonical form: `mqtt`, `mqtts`, `ws` or `wss`, explicit port and WebSocket path.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "mqtt",
            Transport::Tls => "mqtts",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Parse a broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`; `tcp://`, `ssl://`,
/// `tls://` as Paho spells them) with the meaning described in the module docs.
///
/// Errors (a message quoting the URL): unparsable URL, unknown scheme, credentials in the
/// URL (then the URL is not quoted), no host, port 0, a `%` in the host, a fragment, a path
/// or query on a TCP/TLS URL, a `:` in a WebSocket request target.
pub fn parse_broker_url(text: &str) -> Result<BrokerUrl, String> {
    let parsed = url::Url::parse(text).map_err(|e| format!("invalid url {text:?}: {e}"))?;
    let transport = match parsed.scheme() {
        "mqtt" | "tcp" => Transport::Tcp,
        "mqtts" | "ssl" | "tls" => Transport::Tls,
        "ws" => Transport::Ws,
        "wss" => Transport::Wss,
        other => {
            return Err(format!(
                "unsupported scheme {other:?} in {text:?}: use mqtt, mqtts, ws or wss"
            ));
        }
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "credentials in the url are not allowed: use username and password_file".into(),
        );
    }
    let host = match parsed.host() {
        Some(url::Host::Domain("")) | None => return Err(format!("url {text:?} has no host")),
        Some(url::Host::Domain(d)) if d.contains('%') => {
            return Err(format!(
                "url {text:?}: percent-encoded host {d:?} is not a host name"
            ));
        }
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
    };
    if parsed.fragment().is_some() {
        return Err(format!(
            "url {text:?} has a #fragment, which is never sent to a broker"
        ));
    }
    let port = match parsed.port() {
        Some(0) => return Err(format!("url {text:?}: port 0 cannot be dialled")),
        Some(p) => p,
        None => transport.default_port(),
    };
    let path = if transport.is_websocket() {
        ws_request_target(text, &parsed)?
    } else {
        if parsed.query().is_some() || !(parsed.path().is_empty() || parsed.path() == "/") {
            return Err(format!(
                "url {text:?} has a path or query; only ws:// and wss:// urls take one (mosquitto_sub -L would read it as a topic)"
            ));
        }
        String::new()
    };
    Ok(BrokerUrl {
        transport,
        host,
        port,
        path,
    })
}

/// Path and query of a `ws`/`wss` URL as Paho sends them. The `url` crate normalises an
/// absent path of these (WHATWG "special") schemes to `/`, so whether the text had one is
/// read from the text itself: the authority ends at the first `/`, `?` or `#`.
fn ws_request_target(text: &str, parsed: &url::Url) -> Result<String, String> {
    let rest = text.trim().split_once("://").map_or("", |(_, r)| r);
    let has_path = rest
        .find(['/', '?', '#', '\\'])
        .is_some_and(|i| matches!(rest.as_bytes()[i], b'/' | b'\\'));
    let mut target = if has_path {
        parsed.path().to_owned()
    } else {
        DEFAULT_WS_PATH.to_owned()
    };
    if let Some(q) = parsed.query() {
        target.push('?');
        target.push_str(q);
    }
    if target.contains(':') {
        return Err(format!(
            "url {text:?}: the Paho C client reads the port after the last ':' of the address, so a ':' in the path or query cannot be dialled; write it as %3A"
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::*;

    /// Every form of address and what is dialled for it: (url, transport, host, port,
    /// request target, what Paho is given). The README's URL table mirrors this one.
    #[test]
    fn each_form_and_what_is_dialled() {
        let table: &[(&str, Transport, &str, u16, &str, &str)] = &[
            (
                "mqtt://broker",
                Tcp,
                "broker",
                1883,
                "",
                "tcp://broker:1883",
            ),
            (
                "mqtt://broker:1884",
                Tcp,
                "broker",
                1884,
                "",
                "tcp://broker:1884",
            ),
            (
                "mqtt://broker:1884/",
                Tcp,
                "broker",
                1884,
                "",
                "tcp://broker:1884",
            ),
            ("tcp://broker", Tcp, "broker", 1883, "", "tcp://broker:1883"),
            (
                "MQTT://Broker.Example",
                Tcp,
                "Broker.Example",
                1883,
                "",
                "tcp://Broker.Example:1883",
            ),
            (
                "mqtt://127.0.0.1",
                Tcp,
                "127.0.0.1",
                1883,
                "",
                "tcp://127.0.0.1:1883",
            ),
            ("mqtt://[::1]", Tcp, "::1", 1883, "", "tcp://[::1]:1883"),
            (
                "mqtt://[::1]:1884/",
                Tcp,
                "::1",
                1884,
                "",
                "tcp://[::1]:1884",
            ),
            (
                "mqtt://[2001:db8::1]:1883",
                Tcp,
                "2001:db8::1",
                1883,
                "",
                "tcp://[2001:db8::1]:1883",
            ),
            (
                "mqtts://broker",
                Tls,
                "broker",
                8883,
                "",
                "ssl://broker:8883",
            ),
            (
                "mqtts://broker:8884/",
                Tls,
                "broker",
                8884,
                "",
                "ssl://broker:8884",
            ),
            ("ssl://broker", Tls, "broker", 8883, "", "ssl://broker:8883"),
            ("tls://broker", Tls, "broker", 8883, "", "ssl://broker:8883"),
            ("mqtts://[::1]", Tls, "::1", 8883, "", "ssl://[::1]:8883"),
            (
                "ws://broker",
                Ws,
                "broker",
                80,
                "/mqtt",
                "ws://broker:80/mqtt",
            ),
            (
                "ws://broker:8080",
                Ws,
                "broker",
                8080,
                "/mqtt",
                "ws://broker:8080/mqtt",
            ),
            (
                "ws://broker:8080/",
                Ws,
                "broker",
                8080,
                "/",
                "ws://broker:8080/",
            ),
            (
                "ws://broker:8080/mqtt",
                Ws,
                "broker",
                8080,
                "/mqtt",
                "ws://broker:8080/mqtt",
            ),
            (
                "ws://broker:8080/mqtt/",
                Ws,
                "broker",
                8080,
                "/mqtt/",
                "ws://broker:8080/mqtt/",
            ),
            (
                "ws://broker:80/ws",
                Ws,
                "broker",
                80,
                "/ws",
                "ws://broker:80/ws",
            ),
            (
                "ws://broker:8083/mqtt?token=abc",
                Ws,
                "broker",
                8083,
                "/mqtt?token=abc",
                "ws://broker:8083/mqtt?token=abc",
            ),
            (
                "ws://broker?x=1",
                Ws,
                "broker",
                80,
                "/mqtt?x=1",
                "ws://broker:80/mqtt?x=1",
            ),
            (
                "ws://broker/a%20b",
                Ws,
                "broker",
                80,
                "/a%20b",
                "ws://broker:80/a%20b",
            ),
            (
                "ws://[::1]:9001",
                Ws,
                "::1",
                9001,
                "/mqtt",
                "ws://[::1]:9001/mqtt",
            ),
            ("ws://[::1]/", Ws, "::1", 80, "/", "ws://[::1]:80/"),
            (
                "wss://broker",
                Wss,
                "broker",
                443,
                "/mqtt",
                "wss://broker:443/mqtt",
            ),
            (
                "wss://broker:8084/mqtt",
                Wss,
                "broker",
                8084,
                "/mqtt",
                "wss://broker:8084/mqtt",
            ),
            (
                "wss://broker:443/",
                Wss,
                "broker",
                443,
                "/",
                "wss://broker:443/",
            ),
        ];
        for &(text, transport, host, port, path, paho) in table {
            let u = parse_broker_url(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (u.transport, u.host.as_str(), u.port, u.path.as_str()),
                (transport, host, port, path),
                "{text}"
            );
            assert_eq!(u.paho_uri(), paho, "{text}");
            // The canonical form means the same address.
            assert_eq!(parse_broker_url(&u.to_string()), Ok(u.clone()), "{text}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        for (text, msg) in [
            ("http://broker", "unsupported scheme \"http\""),
            (
                "mqtt://user:pw@broker",
                "credentials in the url are not allowed",
            ),
            ("mqtt://broker/sensors/+", "has a path or query"),
            ("mqtt://broker/topic", "only ws:// and wss:// urls take one"),
            ("mqtt://broker?x=1", "has a path or query"),
            ("mqtts://broker:8883/x", "has a path or query"),
            ("mqtt://broker#frag", "#fragment"),
            ("ws://broker/mqtt#frag", "#fragment"),
            ("mqtt://broker:0", "port 0"),
            ("mqtt://broker:65536", "invalid url"),
            ("mqtt://", "has no host"),
            ("mqtt://:1883", "empty host"),
            ("ws://", "invalid url"),
            ("mqtt://br%6Fker", "percent-encoded host"),
            ("ws://broker:8080/a:b", "reads the port after the last ':'"),
            (
                "ws://broker:8080/mqtt?t=a:b",
                "reads the port after the last ':'",
            ),
            ("mqtt://[fe80::1%25eth0]", "invalid url"),
            ("broker:1883", "unsupported scheme"),
        ] {
            let e = parse_broker_url(text).expect_err(text);
            assert!(e.contains(msg), "{text}: {e}");
            assert!(!e.contains("pw@"), "{text}: {e}");
        }
    }
}
