//! A client that can leave without DISCONNECT, for the will probe.
//!
//! A will is published when a connection ends without DISCONNECT (MQTT 5.0 §3.1.2.5, 3.1.1
//! §3.1.2.5): what a device that loses power or network does. Paho cannot do that on
//! purpose: `MQTTAsync_destroy` closes a connected client through `MQTTAsync_closeOnly`,
//! which sends DISCONNECT first (Paho C 1.3, `MQTTAsyncUtils.c`). So this client speaks the
//! two packets it needs itself over its own socket (TCP, or TLS with the broker's settings):
//! CONNECT with a will, CONNACK, and then either nothing (the socket is dropped) or
//! DISCONNECT. No MQTT codec crate is used for two packets: the crates that have one are
//! whole client stacks of their own.

use super::fresh::Failure;
use super::reason;
use crate::config::{BrokerConfig, Protocol, Transport};
use crate::metrics::Reason;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The will a [`WillClient`] connects with: QoS 1, not retained.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// MQTT 5 Will Delay Interval (§3.1.3.2.2), sent in whole seconds rounded up; ignored
    /// on 3.1.1. The session is given the same expiry: a will is published when the delay
    /// passes or the session ends, whichever comes first, so a session that ends with the
    /// connection would publish at once.
    pub delay: Option<Duration>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected client with a will. Dropping it closes the socket without DISCONNECT: the
/// broker must publish the will.
pub struct WillClient {
    stream: Box<dyn Io>,
}

/// Connect `client_id` speaking `protocol` (`V5` or `V311`; `Auto` is taken as `V5`) with
/// `will`, within `within`. Only `mqtt://` and `mqtts://` URLs: WebSocket is refused with
/// `error` (configuration refuses will probes on such brokers).
pub async fn connect(
    cfg: &BrokerConfig,
    protocol: Protocol,
    client_id: &str,
    will: Will<'_>,
    within: Duration,
) -> Result<WillClient, Failure> {
    match tokio::time::timeout(within, connect_now(cfg, protocol, client_id, will)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::new(
            Reason::Timeout,
            format!("no CONNACK within {within:?}"),
        )),
    }
}

async fn connect_now(
    cfg: &BrokerConfig,
    protocol: Protocol,
    client_id: &str,
    will: Will<'_>,
) -> Result<WillClient, Failure> {
    let url = &cfg.url;
    if url.transport.is_websocket() {
        return Err(Failure::new(
            Reason::Error,
            "the will probe speaks MQTT over TCP or TLS only, not WebSocket",
        ));
    }
    // The address Paho dials for the watcher, so both reach the broker the same way.
    let addr = reason::paho_address(&url.host, url.port)
        .await
        .map_err(|(label, detail)| Failure::new(label, detail))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::new(reason::tcp_connect_error(&e), format!("tcp {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut stream: Box<dyn Io> = if url.transport == Transport::Tls {
        Box::new(
            reason::tls_handshake(tcp, cfg)
                .await
                .map_err(|(label, detail)| Failure::new(label, detail))?,
        )
    } else {
        Box::new(tcp)
    };
    let v5 = protocol != Protocol::V311;
    let password = cfg.password.as_ref().map(|p| p.current());
    let packet = connect_packet(&Connect {
        v5,
        client_id,
        keep_alive: cfg.keep_alive,
        username: cfg.username.as_deref(),
        password: password.as_ref().map(|p| p.expose()),
        will,
    });
    let io = |e: std::io::Error| Failure::new(Reason::ConnectionClosed, format!("CONNECT: {e}"));
    stream.write_all(&packet).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let code = read_connack(&mut stream).await?;
    if code != 0 {
        let label = if v5 {
            reason::reason_name(paho_mqtt::ReasonCode::from(u32::from(code)))
        } else {
            paho_mqtt::ConnectReturnCode::try_from(code)
                .map(reason::return_code_name)
                .unwrap_or(Reason::Error)
        };
        return Err(Failure::new(
            label,
            format!("CONNACK refused the connection (code {code:#04x})"),
        ));
    }
    Ok(WillClient { stream })
}

impl WillClient {
    /// Leave cleanly: DISCONNECT (reason 0x00 *Normal disconnection* in MQTT 5, which deletes
    /// the will, §3.14.2.1), then close. Bounded; an error is reported with `error`.
    pub async fn disconnect(mut self) -> Result<(), Failure> {
        let sent = tokio::time::timeout(Duration::from_secs(1), async {
            self.stream.write_all(&[0xE0, 0x00]).await?;
            self.stream.flush().await?;
            self.stream.shutdown().await
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::new(Reason::Error, format!("DISCONNECT: {e}"))),
            Err(_) => Err(Failure::new(Reason::Timeout, "DISCONNECT not written")),
        }
    }
}

/// What goes into a CONNECT.
struct Connect<'a> {
    v5: bool,
    client_id: &'a str,
    keep_alive: Duration,
    username: Option<&'a str>,
    password: Option<&'a str>,
    will: Will<'a>,
}

/// A Variable Byte Integer (MQTT 5.0 §1.5.5, 3.1.1 §2.2.3 "Remaining Length").
fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

/// A length-prefixed string or binary field (§1.5.4, §1.5.6), cut at 65535 bytes.
fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// An MQTT 5 property list (§2.2.2) holding the four-byte property `id` when `value` is
/// given, else empty.
fn push_properties(out: &mut Vec<u8>, id: u8, value: Option<u32>) {
    match value {
        Some(v) => {
            out.extend_from_slice(&[5, id]);
            out.extend_from_slice(&v.to_be_bytes());
        }
        None => out.push(0),
    }
}

/// The CONNECT packet (MQTT 5.0 §3.1, 3.1.1 §3.1): clean start, a QoS 1 will, the
/// credentials, and in MQTT 5 the will delay with a session expiry of the same length.
fn connect_packet(c: &Connect<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + c.will.payload.len());
    push_bytes(&mut body, b"MQTT");
    body.push(if c.v5 { 5 } else { 4 });
    // Clean start, will flag, will QoS 1 (§3.1.2.3).
    let mut flags = 0x02 | 0x04 | 0x08;
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    let keep_alive = c.keep_alive.as_secs().min(u64::from(u16::MAX)) as u16;
    body.extend_from_slice(&keep_alive.to_be_bytes());
    let delay = c
        .will
        .delay
        .filter(|_| c.v5)
        .map(crate::config::mqtt_seconds);
    if c.v5 {
        // Session Expiry Interval (0x11), as long as the will delay.
        push_properties(&mut body, 0x11, delay);
    }
    push_bytes(&mut body, c.client_id.as_bytes());
    if c.v5 {
        // Will Delay Interval (0x18).
        push_properties(&mut body, 0x18, delay);
    }
    push_bytes(&mut body, c.will.topic.as_bytes());
    push_bytes(&mut body, c.will.payload);
    if let Some(u) = c.username {
        push_bytes(&mut body, u.as_bytes());
    }
    if let Some(p) = c.password {
        push_bytes(&mut body, p.as_bytes());
    }
    let mut packet = vec![0x10];
    push_varint(&mut packet, body.len());
    packet.extend_from_slice(&body);
    packet
}

/// Read the CONNACK (§3.2) and return its reason code (v5) or return code (3.1.1).
async fn read_connack<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> Result<u8, Failure> {
    let closed = |e: std::io::Error| {
        Failure::new(
            Reason::ConnectionClosed,
            format!("the broker closed the connection before its CONNACK: {e}"),
        )
    };
    let kind = s.read_u8().await.map_err(closed)?;
    let mut len: usize = 0;
    for i in 0..4 {
        let b = s.read_u8().await.map_err(closed)?;
        len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    if kind != 0x20 || !(2..=4096).contains(&len) {
        return Err(Failure::new(
            Reason::ProtocolError,
            format!("expected a CONNACK, got packet type {kind:#04x} of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.map_err(closed)?;
    Ok(body[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn will(delay: Option<Duration>) -> Will<'static> {
        Will {
            topic: "t/w",
            payload: b"gone",
            delay,
        }
    }

    #[test]
    fn v311_connect_with_will_and_credentials() {
        let p = connect_packet(&Connect {
            v5: false,
            client_id: "c",
            keep_alive: Duration::from_secs(30),
            username: Some("u"),
            password: Some("pw"),
            will: will(Some(Duration::from_secs(9))),
        });
        let expected: &[u8] = &[
            0x10, 31, // CONNECT, remaining length
            0, 4, b'M', b'Q', b'T', b'T', 4, // protocol name and level
            0xCE, 0, 30, // flags: user, password, will QoS 1, will, clean; keep alive
            0, 1, b'c', // client id
            0, 3, b't', b'/', b'w', 0, 4, b'g', b'o', b'n', b'e', // will topic, payload
            0, 1, b'u', 0, 2, b'p', b'w',
        ];
        assert_eq!(p, expected);
    }

    #[test]
    fn v5_connect_carries_will_delay_and_session_expiry() {
        let p = connect_packet(&Connect {
            v5: true,
            client_id: "c",
            keep_alive: Duration::from_secs(60),
            username: None,
            password: None,
            will: will(Some(Duration::from_millis(1500))),
        });
        let expected: &[u8] = &[
            0x10, 36, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x0E, 0, 60, // header, flags
            5, 0x11, 0, 0, 0, 2, // properties: session expiry 2 s
            0, 1, b'c', 5, 0x18, 0, 0, 0, 2, // client id; will properties: delay 2 s
            0, 3, b't', b'/', b'w', 0, 4, b'g', b'o', b'n', b'e',
        ];
        assert_eq!(p, expected);
        let no_delay = connect_packet(&Connect {
            v5: true,
            client_id: "c",
            keep_alive: Duration::from_secs(60),
            username: None,
            password: None,
            will: will(None),
        });
        // Empty property lists: one zero byte each.
        assert_eq!(&no_delay[12..13], &[0]);
        assert_eq!(no_delay[1] as usize, no_delay.len() - 2);
    }

    #[test]
    fn varints_follow_the_spec_examples() {
        for (n, bytes) in [
            (0usize, vec![0x00]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            push_varint(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[tokio::test]
    async fn connack_codes_and_garbage() {
        let mut ok: &[u8] = &[0x20, 0x03, 0x00, 0x00, 0x00];
        assert_eq!(read_connack(&mut ok).await.unwrap(), 0);
        let mut refused: &[u8] = &[0x20, 0x02, 0x00, 0x05];
        assert_eq!(read_connack(&mut refused).await.unwrap(), 5);
        let mut other: &[u8] = &[0x30, 0x02, 0x00, 0x00];
        assert_eq!(
            read_connack(&mut other).await.unwrap_err().reason,
            Reason::ProtocolError
        );
        let mut short: &[u8] = &[0x20];
        assert_eq!(
            read_connack(&mut short).await.unwrap_err().reason,
            Reason::ConnectionClosed
        );
    }
}
