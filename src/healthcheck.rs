//! The client of `mqtt-sentinel healthcheck` (the container's `HEALTHCHECK`; the image has no
//! shell and no curl): GET `/healthz` on our own listener over plain HTTP/1.0, blocking, with
//! a 2 s timeout per step. Used only by `main.rs`; the server side is `http.rs`.

use crate::config::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, write and read timeout of one check.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a check did not pass. `main.rs` prints `BadUrl` as `error: …`, the others as
/// `unhealthy: …`; every variant exits 1.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// `--url` is not `http://host:port/path` (or `https://…`).
    #[error("--url must look like http://127.0.0.1:10883/healthz")]
    BadUrl,
    /// The server answered with something other than 200: its status line (or "no answer").
    #[error("{0}")]
    Status(String),
    /// No connection, a timeout or another socket error on `http://{addr}{path}`.
    #[error("http://{addr}{path}: {source}")]
    Io {
        /// `host:port` as checked.
        addr: String,
        /// Request path, with its leading `/`.
        path: String,
        /// The socket error.
        source: std::io::Error,
    },
}

/// Checks `url`, or by default `http://<cfg.listen>/healthz` (an unspecified listen address
/// becomes loopback). Passes on `HTTP/1.x 200`. Behind TLS (an `https://` URL, or by default a
/// web config with TLS) this client cannot speak HTTP, and with client certificates it could
/// not get in: there an accepted connection is the liveness signal.
pub fn check(cfg: &Config, url: Option<&str>) -> Result<(), HealthError> {
    let https = url.is_some_and(|u| u.starts_with("https://"));
    let (addr, path) = match url {
        Some(u) => split_url(u).ok_or(HealthError::BadUrl)?,
        None => (
            loopback_if_unspecified(cfg.listen).to_string(),
            "/healthz".to_owned(),
        ),
    };
    let tls = https || (url.is_none() && cfg.web.config.as_ref().is_some_and(|w| w.tls.is_some()));
    match get(&addr, &path, tls) {
        Ok(r) if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") => Ok(()),
        Ok(r) => Err(HealthError::Status(
            r.lines().next().unwrap_or("no answer").to_owned(),
        )),
        Err(source) => Err(HealthError::Io { addr, path, source }),
    }
}

/// `http://host:port/path` → (`host:port`, `/path`); `https://` likewise.
fn split_url(u: &str) -> Option<(String, String)> {
    u.strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .and_then(|r| {
            r.split_once('/')
                .map(|(a, p)| (a.to_owned(), format!("/{p}")))
        })
}

/// `0.0.0.0:p` → `127.0.0.1:p`, `[::]:p` → `[::1]:p`; other addresses unchanged.
fn loopback_if_unspecified(mut a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    a
}

/// The first bytes (at most 64) of the answer to `GET path`; with `tls`, a fixed 200 line
/// once the connection is accepted.
fn get(addr: &str, path: &str, tls: bool) -> std::io::Result<String> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&sa, TIMEOUT)?;
    if tls {
        return Ok("HTTP/1.1 200 (TLS endpoint accepts connections)".into());
    }
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    Ok(String::from_utf8_lossy(&head[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:10883/healthz"),
            Some(("127.0.0.1:10883".into(), "/healthz".into()))
        );
        assert_eq!(
            split_url("https://[::1]:1/"),
            Some(("[::1]:1".into(), "/".into()))
        );
        assert_eq!(split_url("127.0.0.1:10883/healthz"), None);
        assert_eq!(split_url("http://127.0.0.1:10883"), None);
    }

    #[test]
    fn unspecified_listen_addresses_become_loopback() {
        let v4: SocketAddr = "0.0.0.0:10883".parse().unwrap();
        let v6: SocketAddr = "[::]:10883".parse().unwrap();
        let other: SocketAddr = "10.0.0.1:10883".parse().unwrap();
        assert_eq!(loopback_if_unspecified(v4).to_string(), "127.0.0.1:10883");
        assert_eq!(loopback_if_unspecified(v6).to_string(), "[::1]:10883");
        assert_eq!(loopback_if_unspecified(other), other);
    }
}
