//! A real mosquitto on an ephemeral loopback port, owned by the test: temp config with
//! `sys_interval 1`, waits until it accepts, SIGSTOP/SIGCONT/kill/restart, killed on drop.

use super::wait::wait_until;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// TLS material for a listener.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_client_cert: bool,
}

impl ListenerTls {
    /// The test PKI's server certificate, trusting its CA for client certificates.
    pub fn from_pki(pki: &super::certs::Pki, require_client_cert: bool) -> Self {
        ListenerTls {
            ca: pki.ca(),
            cert: pki.path("server.crt"),
            key: pki.path("server.key"),
            require_client_cert,
        }
    }
}

#[derive(Debug, Default)]
pub struct MosquittoBuilder {
    users: Vec<(String, String)>,
    tls: Option<ListenerTls>,
    extra: Vec<String>,
    acl: Option<String>,
}

impl MosquittoBuilder {
    /// Require this user (anonymous access off).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }
    pub fn tls(mut self, tls: ListenerTls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// A raw line for mosquitto.conf.
    pub fn conf(mut self, line: &str) -> Self {
        self.extra.push(line.into());
        self
    }
    /// Contents of an `acl_file` (lines before any `user` apply to anonymous clients).
    pub fn acl(mut self, text: &str) -> Self {
        self.acl = Some(text.into());
        self
    }
    pub fn start(self) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conf = String::from(
            "sys_interval 1\npersistence false\n# as root, mosquitto would switch to user mosquitto and lose access to the temp dir\nuser root\nset_tcp_nodelay true\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
        );
        if self.users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pw = dir.path().join("passwd");
            for (i, (u, p)) in self.users.iter().enumerate() {
                let mut c = Command::new("mosquitto_passwd");
                c.arg("-b");
                if i == 0 {
                    c.arg("-c");
                }
                let st = c
                    .arg(&pw)
                    .arg(u)
                    .arg(p)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("mosquitto_passwd");
                assert!(st.success(), "mosquitto_passwd failed");
            }
            conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                pw.display()
            ));
        }
        if let Some(acl) = &self.acl {
            let f = dir.path().join("acl");
            std::fs::write(&f, acl).expect("acl");
            conf.push_str(&format!("acl_file {}\n", f.display()));
        }
        for l in &self.extra {
            conf.push_str(l);
            conf.push('\n');
        }
        let mut m = Mosquitto {
            child: None,
            dir,
            port: 0,
            conf_base: conf,
            tls: self.tls,
        };
        m.spawn_on_free_port();
        m
    }
}

pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    conf_base: String,
    tls: Option<ListenerTls>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Mosquitto {
    /// Anonymous broker, plain TCP.
    pub fn start() -> Mosquitto {
        Self::builder().start()
    }

    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// An edge broker with one bridge, `connection uplink` (remote client id `uplink`, so its
    /// `$SYS` flag is `connection/uplink/state`), to `address`: the central broker, or a fault
    /// proxy in front of it. `keepalive_s` is the bridge's keepalive: how long a stalled link
    /// goes unnoticed by the edge (and 1.5× that by the central broker). `lines` are more
    /// configuration lines after the bridge's: its `topic` mappings, queue limits.
    pub fn bridge_edge(address: SocketAddr, keepalive_s: u32, lines: &[&str]) -> Mosquitto {
        let mut b = Self::builder()
            .conf("connection uplink")
            .conf(&format!("address {address}"))
            .conf("remote_clientid uplink")
            .conf("restart_timeout 1")
            .conf(&format!("keepalive_interval {keepalive_s}"));
        for l in lines {
            b = b.conf(l);
        }
        b.start()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `mqtt://` or `mqtts://` URL of the listener.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn write_conf(&self) -> PathBuf {
        let mut conf = format!("listener {} 127.0.0.1\n", self.port);
        if let Some(t) = &self.tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                t.require_client_cert
            ));
        }
        conf.push_str(&self.conf_base);
        conf.push_str(&format!(
            "log_dest file {}\n",
            self.dir.path().join("mosquitto.log").display()
        ));
        let path = self.dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).expect("write conf");
        path
    }

    fn spawn_on_free_port(&mut self) {
        for _ in 0..5 {
            self.port = free_port();
            if self.spawn() {
                return;
            }
        }
        panic!("mosquitto did not start; log:\n{}", self.log());
    }

    /// Start on `self.port`; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let conf = self.write_conf();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let addr = self.addr();
        let mut exited = false;
        wait_until(Duration::from_secs(30), "mosquitto accepts", || {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                exited = true;
                return Some(());
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
        !exited
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        super::signal(self.pid(), sig);
    }

    /// Freeze the broker (SIGSTOP): sockets stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Set `user`'s password in the broker's password file (takes effect at the next start).
    pub fn set_password(&self, user: &str, password: &str) {
        let st = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(self.dir.path().join("passwd"))
            .arg(user)
            .arg(password)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd failed");
    }

    /// Start again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "restart on port {} failed:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen process ignores SIGKILL until continued on some kernels; thaw first.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}
