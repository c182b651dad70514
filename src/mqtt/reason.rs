//! Where the [`Reason`] of a connection result comes from: MQTT v5 reason codes (v3.1.1
//! return codes mapped onto them), and for transport failures a diagnosis of the first step
//! that failed ([`diagnose`]). The closed set itself is `metrics::labels::Reason`.

use paho_mqtt::{ConnectReturnCode, ReasonCode};
use std::net::SocketAddr;

pub use crate::metrics::Reason;

/// snake_case name of a v5 reason code, as used in `result`/`reason` labels.
pub fn reason_name(rc: ReasonCode) -> Reason {
    use ReasonCode::*;
    match rc {
        Success => Reason::Success,
        UnspecifiedError => Reason::UnspecifiedError,
        MalformedPacket => Reason::MalformedPacket,
        ProtocolError => Reason::ProtocolError,
        ImplementationSpecificError => Reason::ImplementationSpecificError,
        UnsupportedProtocolVersion => Reason::UnsupportedProtocolVersion,
        ClientIdentifierNotValid => Reason::ClientIdentifierNotValid,
        BadUserNameOrPassword => Reason::BadUsernameOrPassword,
        NotAuthorized => Reason::NotAuthorized,
        ServerUnavailable => Reason::ServerUnavailable,
        ServerBusy => Reason::ServerBusy,
        Banned => Reason::Banned,
        ServerShuttingDown => Reason::ServerShuttingDown,
        BadAuthenticationMethod => Reason::BadAuthenticationMethod,
        KeepAliveTimeout => Reason::KeepAliveTimeout,
        SessionTakenOver => Reason::SessionTakenOver,
        TopicFilterInvalid => Reason::TopicFilterInvalid,
        TopicNameInvalid => Reason::TopicNameInvalid,
        PacketTooLarge => Reason::PacketTooLarge,
        MessageRateTooHigh => Reason::MessageRateTooHigh,
        QuotaExceeded => Reason::QuotaExceeded,
        AdministrativeAction => Reason::AdministrativeAction,
        PayloadFormatInvalid => Reason::PayloadFormatInvalid,
        RetainNotSupported => Reason::RetainNotSupported,
        QosNotSupported => Reason::QosNotSupported,
        UseAnotherServer => Reason::UseAnotherServer,
        ServerMoved => Reason::ServerMoved,
        ConnectionRateExceeded => Reason::ConnectionRateExceeded,
        MaximumConnectTime => Reason::MaximumConnectTime,
        _ => Reason::Error,
    }
}

/// v3.1.1 CONNACK return codes, named like their v5 counterparts.
pub fn return_code_name(rc: ConnectReturnCode) -> Reason {
    match rc {
        ConnectReturnCode::Accepted => Reason::Success,
        ConnectReturnCode::UnacceptableProtocolVersion => Reason::UnsupportedProtocolVersion,
        ConnectReturnCode::IdentifierRejected => Reason::ClientIdentifierNotValid,
        ConnectReturnCode::ServerUnavailable => Reason::ServerUnavailable,
        ConnectReturnCode::BadUserNameOrPassword => Reason::BadUsernameOrPassword,
        ConnectReturnCode::NotAuthorized => Reason::NotAuthorized,
    }
}

/// A label decided from the error alone, or `None` when the transport must be diagnosed
/// (Paho reports refused ports, failed handshakes and unknown hosts alike).
pub fn from_error(err: &paho_mqtt::Error) -> Option<Reason> {
    use paho_mqtt::Error as E;
    match err {
        E::ReasonCode(rc, _) => Some(reason_name(*rc)),
        E::ConnectReturn(rc) => Some(return_code_name(*rc)),
        E::TcpConnectTimeout | E::Timeout => Some(Reason::Timeout),
        E::SslNotSupported => Some(Reason::TlsNotSupported),
        _ => None,
    }
}

/// The label for any failed Paho operation: the decisive one, else `error`.
pub fn label(err: &paho_mqtt::Error) -> Reason {
    from_error(err).unwrap_or(Reason::Error)
}

/// HTTP statuses a refused WebSocket upgrade is labelled with, `websocket_http_<status>`;
/// any other status is `websocket_http_other`. Chosen from what reverse proxies and brokers
/// answer: redirects (an http→https or path redirect), 400/405/426 (not a WebSocket endpoint
/// or wrong version), 401/403 (authentication at a proxy), 404 (wrong path: `/mqtt` vs `/`),
/// 429, and a proxy's 500/502/503/504 with no broker behind it. 200: a web page answered.
pub const WEBSOCKET_STATUSES: &[(u16, Reason)] = &[
    (200, Reason::WebsocketHttp200),
    (301, Reason::WebsocketHttp301),
    (302, Reason::WebsocketHttp302),
    (307, Reason::WebsocketHttp307),
    (308, Reason::WebsocketHttp308),
    (400, Reason::WebsocketHttp400),
    (401, Reason::WebsocketHttp401),
    (403, Reason::WebsocketHttp403),
    (404, Reason::WebsocketHttp404),
    (405, Reason::WebsocketHttp405),
    (426, Reason::WebsocketHttp426),
    (429, Reason::WebsocketHttp429),
    (500, Reason::WebsocketHttp500),
    (502, Reason::WebsocketHttp502),
    (503, Reason::WebsocketHttp503),
    (504, Reason::WebsocketHttp504),
];
/// The label of a WebSocket upgrade answered with HTTP `status` instead of 101.
pub fn websocket_status(status: u16) -> Reason {
    WEBSOCKET_STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(Reason::WebsocketHttpOther, |(_, l)| *l)
}

/// The longest the diagnosis of one failed connect may take, within the connect timeout.
const DIAGNOSIS_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The label for a failed connect: from the error when it says enough, otherwise by redoing
/// the transport ourselves, step by step as Paho does it, and naming the first step that
/// fails: [`Reason::Dns`], then the TCP connect ([`Reason::Refused`],
/// [`Reason::Unreachable`]), then for `mqtts`/`wss` a TLS handshake with the broker's trust
/// settings ([`Reason::TlsCertificate`] when the server certificate does not verify, else
/// [`Reason::TlsHandshake`], also when a TLS 1.3 server's alert refusing our client
/// certificate arrives within 500 ms), then for `ws`/`wss` the HTTP upgrade to the URL's
/// request target ([`websocket_status`], [`Reason::WebsocketUpgrade`]). When all of these
/// succeed the broker must have closed the connection before its CONNACK:
/// [`Reason::ConnectionClosed`]. Paho reports all of these alike as "TCP/TLS connect failure".
///
/// Runs on the failure path only, bounded by 3 s and by what is left of the connect timeout
/// ([`Reason::Timeout`] when that runs out). The TLS check uses rustls (the broker connection
/// is OpenSSL, through Paho); both verify the chain against `tls.ca_file` (else the system's
/// roots) and the URL's host, or nothing with `insecure_skip_verify`. A broker that recovers
/// between Paho's attempt and the diagnosis is reported as `connection_closed`.
pub async fn diagnose(
    err: &paho_mqtt::Error,
    elapsed: std::time::Duration,
    cfg: &crate::config::BrokerConfig,
) -> Diagnosis {
    use std::time::Duration;
    let only = |label| Diagnosis {
        label,
        detail: None,
    };
    if let Some(label) = from_error(err) {
        return only(label);
    }
    if elapsed + Duration::from_millis(100) >= cfg.connect_timeout {
        return only(Reason::Timeout);
    }
    let budget = cfg
        .connect_timeout
        .saturating_sub(elapsed)
        .min(DIAGNOSIS_BUDGET);
    match tokio::time::timeout(budget, transport::first_failure(cfg)).await {
        Ok((label, detail)) => Diagnosis {
            label,
            detail: Some(detail),
        },
        Err(_) => Diagnosis {
            label: Reason::Timeout,
            detail: Some(format!("diagnosis unfinished after {budget:?}")),
        },
    }
}

/// What [`diagnose`] found: the bounded label, and for the log line what exactly failed
/// (the OS error, the TLS alert or certificate error, the HTTP status line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub label: Reason,
    pub detail: Option<String>,
}

impl Diagnosis {
    /// Paho's error followed by the detail: `TCP/TLS connect failure (tls: invalid peer
    /// certificate: UnknownIssuer)`.
    pub fn message(&self, err: &paho_mqtt::Error) -> String {
        match &self.detail {
            Some(d) => format!("{err} ({d})"),
            None => err.to_string(),
        }
    }
}

/// The TLS handshake the diagnosis does, with `cfg`'s TLS settings, for a client of our own
/// that speaks MQTT itself (`mqtt::will`); `Err` carries the label and what failed.
pub(crate) async fn tls_handshake(
    tcp: tokio::net::TcpStream,
    cfg: &crate::config::BrokerConfig,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, (Reason, String)> {
    transport::handshake(tcp, cfg).await
}

/// The label of a failed TCP connect, by its OS error.
pub(crate) fn tcp_connect_error(e: &std::io::Error) -> Reason {
    transport::connect_error(e)
}

/// The address Paho C dials for `host:port`: of what `getaddrinfo` returns, the first IPv4
/// address, else the last one (Paho C 1.3 `Socket_new`, "prefer ip4 addresses"). A client
/// of our own (`mqtt::will`) and the diagnosis dial the same address as Paho does: with a
/// name that resolves to `::1` and then `127.0.0.1` (a `localhost` listed for both in
/// `/etc/hosts`), a broker listening on IPv4 only refuses the first address while Paho gets
/// in. `Err` is `dns`.
pub(crate) async fn paho_address(host: &str, port: u16) -> Result<SocketAddr, (Reason, String)> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => {
            prefer_ipv4(found).ok_or_else(|| (Reason::Dns, format!("dns: {host} has no address")))
        }
        Err(e) => Err((Reason::Dns, format!("dns: {host}: {e}"))),
    }
}

/// Paho C's choice among resolved addresses (see [`paho_address`]).
fn prefer_ipv4(found: impl IntoIterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let mut last = None;
    for a in found {
        if a.is_ipv4() {
            return Some(a);
        }
        last = Some(a);
    }
    last
}

/// Redoing Paho's transport steps to find the one that fails (see [`diagnose`]).
mod transport {
    use super::*;
    use crate::config::{BrokerConfig, BrokerUrl, TlsConfig};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// The label of the first step that fails, and what failed.
    type Found = (Reason, String);

    pub(super) async fn first_failure(cfg: &BrokerConfig) -> Found {
        let url = &cfg.url;
        let addr = match super::paho_address(&url.host, url.port).await {
            Ok(a) => a,
            Err(found) => return found,
        };
        let tcp = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => return (connect_error(&e), format!("tcp {addr}: {e}")),
        };
        if url.is_tls() {
            let mut tls = match handshake(tcp, cfg).await {
                Ok(s) => s,
                Err(found) => return found,
            };
            if !url.transport.is_websocket() {
                // In TLS 1.3 a server refuses a client certificate (or its absence) after the
                // handshake completes on our side: its alert is the first thing it sends.
                // A healthy broker sends nothing before our CONNECT, hence the short wait.
                let mut b = [0u8; 1];
                if let Ok(Err(e)) = tokio::time::timeout(ALERT_WAIT, tls.read(&mut b)).await
                    && is_tls(&e)
                {
                    return (tls_error(&e), format!("tls: {e}"));
                }
            }
            upgrade_or_closed(tls, url).await
        } else {
            upgrade_or_closed(tcp, url).await
        }
    }

    /// A failed TCP connect, by its OS error.
    pub(super) fn connect_error(e: &std::io::Error) -> Reason {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Reason::Refused,
            K::TimedOut => Reason::Timeout,
            _ => Reason::Unreachable,
        }
    }

    async fn upgrade_or_closed<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        url: &BrokerUrl,
    ) -> Found {
        if url.transport.is_websocket()
            && let Some(found) = upgrade(&mut s, url).await
        {
            return found;
        }
        let layers = match url.transport {
            crate::config::Transport::Tcp => "TCP",
            crate::config::Transport::Tls => "TCP and TLS",
            crate::config::Transport::Ws => "TCP and the WebSocket upgrade",
            crate::config::Transport::Wss => "TCP, TLS and the WebSocket upgrade",
        };
        (
            Reason::ConnectionClosed,
            format!("{layers} succeed; the broker closed the connection before its CONNACK"),
        )
    }

    /// The WebSocket upgrade as Paho sends it (`WebSocket_connect`); `None` when answered 101.
    async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        url: &BrokerUrl,
    ) -> Option<Found> {
        use base64::Engine as _;
        let no_answer = |why: &str| Some((Reason::WebsocketUpgrade, format!("websocket: {why}")));
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let origin = if url.is_tls() { "https" } else { "http" };
        let host = url.authority();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: {origin}://{host}\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            url.path
        );
        if let Err(e) = s.write_all(request.as_bytes()).await {
            return no_answer(&e.to_string());
        }
        // The status line and headers; a longer head is no answer we understand.
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        loop {
            let n = match s.read(&mut buf[len..]).await {
                Ok(n) => n,
                Err(e) if is_tls(&e) => return Some((tls_error(&e), format!("tls: {e}"))),
                Err(e) => return no_answer(&e.to_string()),
            };
            if n == 0 {
                return no_answer("closed without an HTTP answer to the upgrade");
            }
            len += n;
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut rsp = httparse::Response::new(&mut headers);
            match rsp.parse(&buf[..len]) {
                Ok(httparse::Status::Complete(_)) => {
                    return match rsp.code {
                        Some(101) => None,
                        Some(code) => Some((
                            websocket_status(code),
                            format!(
                                "websocket: GET {} answered HTTP {code} {}",
                                url.path,
                                rsp.reason.unwrap_or_default()
                            ),
                        )),
                        None => no_answer("no status"),
                    };
                }
                Ok(httparse::Status::Partial) if len < buf.len() => continue,
                _ => return no_answer("the answer is not HTTP"),
            }
        }
    }

    pub(super) async fn handshake(
        tcp: tokio::net::TcpStream,
        cfg: &BrokerConfig,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Found> {
        let config = client_config(cfg.tls.as_ref())
            .map_err(|e| (Reason::TlsHandshake, format!("tls settings: {e}")))?;
        let name = ServerName::try_from(cfg.url.host.clone())
            .map_err(|e| (Reason::TlsCertificate, format!("tls: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| (tls_error(&e), format!("tls: {e}")))?;
        let verified = !cfg.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
        if let (true, Some(why)) = (verified, cfg.url.unverifiable_by_paho()) {
            // What Paho's own check concludes.
            return Err((Reason::TlsCertificate, format!("tls: {why}")));
        }
        Ok(tls)
    }

    /// How long a TLS connection is read for a late alert (see `first_failure`).
    const ALERT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

    /// Whether the error is the TLS layer's (an alert, a bad record), not the socket's.
    fn is_tls(e: &std::io::Error) -> bool {
        e.get_ref().is_some_and(|i| i.is::<rustls::Error>())
    }

    /// A failed handshake: certificate verification, or anything else.
    pub(super) fn tls_error(e: &std::io::Error) -> Reason {
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(_)) => Reason::TlsCertificate,
            _ => Reason::TlsHandshake,
        }
    }

    /// What Paho is configured with (`mqtt::options::connect_options`): `ca_file` alone as
    /// the trust store, else the system's; the client certificate and key; no verification
    /// with `insecure_skip_verify`.
    fn client_config(tls: Option<&TlsConfig>) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)?;
        let builder = if tls.is_some_and(|t| t.insecure_skip_verify) {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match tls.and_then(|t| t.ca_file.as_ref()) {
                Some(ca) => {
                    let certs = CertificateDer::pem_file_iter(ca.get().tls_path(ca.path()))
                        .map_err(|e| rustls::Error::General(e.to_string()))?;
                    roots.add_parsable_certificates(certs.flatten());
                }
                None => {
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                }
            }
            builder.with_root_certificates(roots)
        };
        let cert = tls.and_then(|t| t.cert_file.as_ref());
        let Some(cert) = cert else {
            return Ok(builder.with_no_client_auth());
        };
        // Paho reads the key from the certificate file when no key_file is given.
        let key_file = tls.and_then(|t| t.key_file.as_ref()).unwrap_or(cert);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(cert.get().tls_path(cert.path()))
                .map_err(|e| rustls::Error::General(e.to_string()))?
                .flatten()
                .collect();
        let key = PrivateKeyDer::from_pem_file(key_file.get().tls_path(key_file.path()))
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder.with_client_auth_cert(chain, key)
    }

    /// `insecure_skip_verify`: any certificate is accepted (signatures still checked).
    #[derive(Debug)]
    struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// Every transport label a connect failure can have besides the MQTT reason-code names
/// (what the README's "Connect failure reasons" table lists).
pub const CONNECT_TRANSPORT_LABELS: &[Reason] = &[
    Reason::Dns,
    Reason::Refused,
    Reason::Unreachable,
    Reason::Timeout,
    Reason::TlsCertificate,
    Reason::TlsHandshake,
    Reason::WebsocketUpgrade,
    Reason::WebsocketHttpOther,
    Reason::ConnectionClosed,
    Reason::TlsNotSupported,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_paho_dials_is_the_first_ipv4_else_the_last() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            prefer_ipv4([a("[::1]:1883"), a("127.0.0.1:1883"), a("10.0.0.1:1883")]),
            Some(a("127.0.0.1:1883"))
        );
        assert_eq!(
            prefer_ipv4([a("[::1]:1883"), a("[fd00::1]:1883")]),
            Some(a("[fd00::1]:1883"))
        );
        assert_eq!(prefer_ipv4([]), None);
    }

    #[test]
    fn websocket_statuses_are_bounded_and_named() {
        assert_eq!(websocket_status(404), "websocket_http_404");
        assert_eq!(websocket_status(503), "websocket_http_503");
        assert_eq!(websocket_status(418), Reason::WebsocketHttpOther);
        assert_eq!(websocket_status(101), Reason::WebsocketHttpOther);
        for (code, label) in WEBSOCKET_STATUSES {
            assert_eq!(*label, format!("websocket_http_{code}"));
        }
    }

    #[test]
    fn os_errors_of_a_tcp_connect() {
        use std::io::{Error, ErrorKind as K};
        for (kind, want) in [
            (K::ConnectionRefused, Reason::Refused),
            (K::TimedOut, Reason::Timeout),
            (K::HostUnreachable, Reason::Unreachable),
            (K::NetworkUnreachable, Reason::Unreachable),
            (K::AddrNotAvailable, Reason::Unreachable),
            (K::PermissionDenied, Reason::Unreachable),
        ] {
            assert_eq!(
                transport::connect_error(&Error::from(kind)),
                want,
                "{kind:?}"
            );
        }
        let cert = Error::new(
            K::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(transport::tls_error(&cert), Reason::TlsCertificate);
        let alert = Error::new(
            K::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert_eq!(transport::tls_error(&alert), Reason::TlsHandshake);
        assert_eq!(
            transport::tls_error(&Error::from(K::UnexpectedEof)),
            Reason::TlsHandshake
        );
    }

    /// The README lists the closed set; a label added here must be documented there.
    #[test]
    fn readme_lists_every_connect_label() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Connect failure reasons")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        for label in CONNECT_TRANSPORT_LABELS {
            assert!(section.contains(&format!("`{label}`")), "{label}");
        }
        for (code, label) in WEBSOCKET_STATUSES {
            let listed =
                section.contains(&format!("`{label}`")) || section.contains(&format!("`_{code}`"));
            assert!(listed, "{label}");
        }
        assert!(!section.contains("`error`"));
    }

    #[test]
    fn names() {
        assert_eq!(
            reason_name(ReasonCode::BadUserNameOrPassword),
            "bad_username_or_password"
        );
        assert_eq!(reason_name(ReasonCode::QuotaExceeded), "quota_exceeded");
        assert_eq!(
            return_code_name(ConnectReturnCode::NotAuthorized),
            "not_authorized"
        );
        assert_eq!(
            from_error(&paho_mqtt::Error::ConnectReturn(
                ConnectReturnCode::BadUserNameOrPassword
            )),
            Some(Reason::BadUsernameOrPassword)
        );
        assert_eq!(from_error(&paho_mqtt::Error::TcpTlsConnectFailure), None);
    }
}
