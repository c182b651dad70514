//! Paho C's wake-up pair made non-blocking.
//!
//! Paho C 1.3.16 wakes its receive thread by writing one byte to an `AF_UNIX` socketpair
//! (`Socket_interrupt`, on every new socket and every close) while it holds its global
//! mutex. The write end is left blocking; the receive thread reads the pair one byte per
//! `poll`, and between polls it handles every socket that was ready, taking that same mutex.
//! Hundreds of sessions connecting or closing at once while $SYS traffic keeps the receive
//! thread busy fill the pair (a few hundred one-byte writes): the writer blocks holding the
//! mutex, the receive thread waits for the mutex, and every Paho call of the process waits
//! too — the runtime thread's included, so `/metrics` and `/healthz` stop answering. Seen
//! with 1000 brokers against 4 loopback mosquittos: stuck at about 400 connections, every
//! run (`scripts/bench-scale.sh`).
//!
//! The bytes are only wake-ups: when the pair is full, the receive thread is already due to
//! wake, so a write that fails with `EAGAIN` loses nothing (Paho ignores the result). So
//! after creating a client, [`unblock`] sets `O_NONBLOCK` on every `AF_UNIX` socket of the
//! process. Paho's are the only Unix sockets this process makes besides tokio's own wake-up
//! pairs, which are non-blocking already (no broker URL is a Unix socket: `mqtt`, `mqtts`,
//! `ws`, `wss` only). Paho creates its pair with its first client (and again after the last
//! one is destroyed), so this runs after every client is created.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::OFlags;
use rustix::net::AddressFamily;

/// Sets `O_NONBLOCK` on every blocking `AF_UNIX` socket of the process (see the module
/// docs); returns how many it changed. Errors (no `/proc`, an fd closed meanwhile) are
/// skipped: this is a safeguard, never a reason to fail a connect.
pub fn unblock() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Only sockets: `/proc/self/fd/N` reads `socket:[inode]`.
        if !std::fs::read_link(entry.path())
            .is_ok_and(|t| t.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
        {
            continue;
        }
        // SAFETY: the fd was open when listed. If it is closed before the calls below, they
        // fail (EBADF, skipped); if its number is reused meanwhile, the checks run on the new
        // fd, which gets O_NONBLOCK only if it too is a blocking Unix socket.
        #[allow(unsafe_code)]
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if set_nonblocking_if_unix(fd.as_fd()) {
            changed += 1;
        }
    }
    changed
}

fn set_nonblocking_if_unix(fd: BorrowedFd<'_>) -> bool {
    if !rustix::net::sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX) {
        return false;
    }
    match rustix::fs::fcntl_getfl(fd) {
        Ok(flags) if !flags.contains(OFlags::NONBLOCK) => {
            rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creating a Paho client makes its wake-up pair; after `unblock`, no Unix socket of the
    /// process blocks.
    #[test]
    fn paho_wakeup_pair_is_non_blocking() {
        let c = paho_mqtt::AsyncClient::new(
            paho_mqtt::CreateOptionsBuilder::new()
                .server_uri("tcp://127.0.0.1:1")
                .client_id("wakeup-test")
                .persistence(None)
                .finalize(),
        )
        .unwrap();
        unblock();
        let mut unix = 0;
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(fd) = entry.file_name().to_str().unwrap_or("").parse::<i32>() else {
                continue;
            };
            #[allow(unsafe_code)]
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            if rustix::net::sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX) {
                unix += 1;
                let fl = rustix::fs::fcntl_getfl(fd).unwrap();
                assert!(fl.contains(OFlags::NONBLOCK), "fd {fd:?} blocks");
            }
        }
        assert!(
            unix >= 2,
            "Paho's socketpair not found ({unix} Unix sockets)"
        );
        drop(c);
    }
}
