//! A TCP fault proxy on a loopback port in front of a broker, owned by the test: it passes
//! bytes through, or stalls both directions (a half-open link), black-holes new connections,
//! closes new ones after the server's first `n` bytes (mid-TLS-handshake), and resets every
//! open connection (RST). Threads stop when it is dropped.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Nothing is forwarded either way; sockets stay open.
    Stall,
    /// New connections are accepted and never answered.
    BlackHole,
    /// New connections are closed after `n` bytes from the server.
    CloseAfter(usize),
    /// The next new connection is closed before the server's first byte reaches the client
    /// (before a CONNACK); then the proxy passes traffic again.
    CloseOnce,
    /// New connections hold every chunk this long before forwarding it, each way (chunks keep
    /// their own arrival time, so delays do not add up): a slow but live broker, or a long
    /// path to it.
    Delay(Duration),
}

struct Shared {
    mode: Mutex<Mode>,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset_all();
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

/// How often a pump looks at the mode while it waits for bytes.
const POLL: Duration = Duration::from_millis(20);

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = c else { continue };
                s.open.lock().unwrap().push(client.try_clone().unwrap());
                let mode = *s.mode.lock().unwrap();
                if mode == Mode::BlackHole {
                    continue; // kept open in `open`, never read
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                s.open.lock().unwrap().push(server.try_clone().unwrap());
                if let Mode::Delay(d) = mode {
                    delayed(
                        &s,
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        d,
                    );
                    delayed(&s, server, client, d);
                    continue;
                }
                let limit = match mode {
                    Mode::CloseAfter(n) => Some(n),
                    Mode::CloseOnce => {
                        *s.mode.lock().unwrap() = Mode::Pass;
                        Some(0)
                    }
                    _ => None,
                };
                pump(
                    &s,
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pump(&s, server, client, limit);
            }
        });
        Proxy { addr, shared }
    }

    pub fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Reset every open connection (RST, not FIN).
    pub fn reset_all(&self) {
        for s in self.shared.open.lock().unwrap().drain(..) {
            let sock = socket2::SockRef::from(&s);
            let _ = sock.set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copy `from` → `to` while the mode allows; `limit` closes both after that many bytes.
fn pump(s: &Arc<Shared>, mut from: TcpStream, mut to: TcpStream, limit: Option<usize>) {
    use std::io::{Read, Write};
    let s = s.clone();
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(POLL));
        let mut buf = [0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            if s.stop.load(Ordering::SeqCst) {
                return;
            }
            if *s.mode.lock().unwrap() == Mode::Stall {
                std::thread::sleep(POLL);
                continue;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => break,
            };
            let n = limit.map_or(n, |l| n.min(l.saturating_sub(sent)));
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n;
            if limit.is_some_and(|l| sent >= l) {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Copy `from` → `to`, each chunk `d` after it was read: a reader thread stamps chunks, a
/// writer thread forwards each when it is due.
fn delayed(s: &Arc<Shared>, mut from: TcpStream, mut to: TcpStream, d: Duration) {
    use std::io::{Read, Write};
    use std::time::Instant;
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let s = s.clone();
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(POLL));
        let mut buf = [0u8; 16 * 1024];
        while !s.stop.load(Ordering::SeqCst) {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send((Instant::now() + d, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            // not a synchronisation: the simulated latency itself
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
