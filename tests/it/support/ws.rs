//! A WebSocket gateway on a loopback port in front of a real broker, owned by the test (the
//! installed mosquitto is built without WebSocket support). It answers the RFC 6455 upgrade
//! only at its `path` (an HTTP 404 elsewhere, as EMQX and HiveMQ answer a wrong path), records
//! every request target and `Host` header it was sent, and then carries the MQTT bytes in
//! binary frames to and from the broker over TCP. Connections are closed when it is dropped.

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// RFC 6455 section 1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
    /// (request target, Host header) of every upgrade request.
    requests: Mutex<Vec<(String, String)>>,
}

pub struct WsGateway {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for WsGateway {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

impl WsGateway {
    /// Listen on `bind` (`127.0.0.1:0`, `[::1]:0`), upgrade at `path`, bridge to `upstream`.
    pub fn start(bind: &str, upstream: SocketAddr, path: &str) -> WsGateway {
        let l = TcpListener::bind(bind).unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let path = path.to_owned();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = c else { continue };
                s.open.lock().unwrap().push(client.try_clone().unwrap());
                let s = s.clone();
                let path = path.clone();
                std::thread::spawn(move || serve(&s, client, upstream, &path));
            }
        });
        WsGateway { addr, shared }
    }

    /// `ws://127.0.0.1:port` (or `[::1]`) without a path.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// (request target, Host header) of every upgrade request so far.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.requests.lock().unwrap().clone()
    }
}

/// The request head, read a byte at a time so no frame byte is consumed with it.
fn read_head(c: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b).ok()? == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.push(b[0]);
    }
    String::from_utf8(head).ok()
}

fn serve(s: &Arc<Shared>, mut client: TcpStream, upstream: SocketAddr, path: &str) {
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    s.requests
        .lock()
        .unwrap()
        .push((target.clone(), header("Host")));
    if target != path {
        let _ = client.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let key = header("Sec-WebSocket-Key");
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    let accept = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    let Ok(mut server) = TcpStream::connect(upstream) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    s.open.lock().unwrap().push(server.try_clone().unwrap());
    let ok = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    if client.write_all(ok.as_bytes()).is_err() {
        return;
    }
    // broker → client: one unmasked binary frame per MQTT packet, as brokers send them
    let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(len) = mqtt_packet_len(&pending) {
                let packet: Vec<u8> = pending.drain(..len).collect();
                if to.write_all(&frame(&packet)).is_err() {
                    return;
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    // client → broker: unmask data frames, stop at a close frame
    loop {
        let mut h = [0u8; 2];
        if client.read_exact(&mut h).is_err() {
            break;
        }
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            if client.read_exact(&mut l).is_err() {
                break;
            }
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            if client.read_exact(&mut l).is_err() {
                break;
            }
            len = u64::from_be_bytes(l);
        }
        let mut mask = [0u8; 4];
        if h[1] & 0x80 != 0 && client.read_exact(&mut mask).is_err() {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if client.read_exact(&mut payload).is_err() {
            break;
        }
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        // data frames (continuation, text, binary) go on; ping/pong are dropped: the MQTT
        // keep-alive is what matters here
        let data = opcode <= 0x2;
        if opcode == 0x8 || (data && server.write_all(&payload).is_err()) {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

/// The length of the first complete MQTT packet in `b` (fixed header + remaining length).
fn mqtt_packet_len(b: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for i in 0..4 {
        let byte = *b.get(1 + i)?;
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 2 + i + len;
            return (b.len() >= total).then_some(total);
        }
    }
    None
}

/// An unmasked binary frame (server to client).
fn frame(payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![0x82u8];
    match n {
        0..=125 => f.push(n as u8),
        126..=0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// A TLS front on a loopback port (rustls, as a `wss` reverse proxy terminates TLS) that
/// passes the decrypted bytes to `upstream`. Its runtime, and every connection, stops when it
/// is dropped.
pub struct TlsFront {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    pub fn start(upstream: SocketAddr, cert: &std::path::Path, key: &std::path::Path) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let l = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = l.local_addr().unwrap();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsFront {
            addr,
            _runtime: runtime,
        }
    }
}
