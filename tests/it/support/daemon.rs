//! A packaged daemon (Prometheus, Alertmanager) on a free loopback port in a temp dir,
//! killed on drop.

use super::scrape::get;
use super::wait_until;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `program` with the arguments `args(temp dir, listen address)` gives and waits
    /// (60 s at most: a deadline, not a timing) until `ready` answers 200. `package` names
    /// the Debian package for the panic message when the program is missing.
    pub fn start(
        program: &str,
        package: &str,
        ready: &str,
        args: impl FnOnce(&Path, SocketAddr) -> Vec<String>,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(program)
            .args(args(dir.path(), addr))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (Debian package {package})"));
        let d = Daemon { child, addr, dir };
        wait_until(Duration::from_secs(60), &format!("{program} ready"), || {
            get(d.addr, ready, &[]).ok().filter(|r| r.status == 200)
        });
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}
