//! MQTT brokers other than mosquitto, each on a free loopback port in a temp dir and killed
//! on drop: amqtt (PyPI), nats-server (Debian, MQTT with JetStream), rabbitmq-server (Debian)
//! and aedes (npm, run by `aedes-broker.cjs` beside this file). `scripts/install-deps.sh`
//! installs them all.

use super::wait::wait_until;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Broker {
    /// Started in its own process group; drop kills the whole group.
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    name: &'static str,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The group: RabbitMQ's script, the Erlang VM and its helpers (epmd included).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    fn spawn(
        name: &'static str,
        install: &str,
        port: u16,
        dir: tempfile::TempDir,
        cmd: impl FnOnce(&Path) -> Command,
    ) -> Broker {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = cmd(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} ({install}; scripts/install-deps.sh does it)"));
        let mut b = Broker {
            child,
            port,
            dir,
            name,
        };
        // RabbitMQ boots an Erlang VM: ~10 s on an idle machine, well over 30 s on a loaded
        // 2-core CI box. A deadline for a broker that never comes up, not a timing. A broker
        // that exited (a missing module, a taken port) fails at once, with its log.
        wait_until(
            Duration::from_secs(120),
            &format!("{name} accepting"),
            || {
                if let Ok(Some(st)) = b.child.try_wait() {
                    panic!("{name} exited before accepting: {st}\n{}", b.log());
                }
                TcpStream::connect(("127.0.0.1", port)).ok()
            },
        );
        b
    }

    /// amqtt with its `$SYS` plugin at a 1 s interval, anonymous clients allowed.
    pub fn amqtt() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("broker.yaml");
        std::fs::write(
            &conf,
            format!(
                "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\nplugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n  amqtt.plugins.sys.broker.BrokerSysPlugin:\n    sys_interval: 1\n"
            ),
        )
        .unwrap();
        Broker::spawn("amqtt", "pip install amqtt==0.12.1", port, dir, |_| {
            let mut c = Command::new("amqtt");
            c.arg("-c").arg(&conf);
            c
        })
    }

    /// nats-server with its MQTT listener (which needs JetStream, stored in the temp dir).
    pub fn nats() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let client_port = free_port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{client_port}\nserver_name: sentinel-test\njetstream {{ store_dir: {:?} }}\nmqtt {{ listen: 127.0.0.1:{port} }}\n",
                dir.path().join("js")
            ),
        )
        .unwrap();
        Broker::spawn(
            "nats-server",
            "apt-get install nats-server",
            port,
            dir,
            |_| {
                let mut c = Command::new("nats-server");
                c.arg("-c").arg(&conf);
                c
            },
        )
    }

    /// rabbitmq-server (Debian 3.10) with `rabbitmq_mqtt`, anonymous MQTT as guest, every
    /// port and its own epmd on loopback, all state in the temp dir.
    pub fn rabbitmq() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (amqp, dist, epmd) = (free_port(), free_port(), free_port());
        let d = dir.path();
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp}\nmqtt.listeners.tcp.default = 127.0.0.1:{port}\nmqtt.allow_anonymous = true\nloopback_users = none\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("enabled_plugins"), "[rabbitmq_mqtt].\n").unwrap();
        let script = format!(
            "epmd -port {epmd} -address 127.0.0.1 & exec /usr/lib/rabbitmq/bin/rabbitmq-server"
        );
        Broker::spawn(
            "rabbitmq-server",
            "apt-get install rabbitmq-server",
            port,
            dir,
            |d| {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(script)
                    .env("HOME", d)
                    .env("ERL_EPMD_PORT", epmd.to_string())
                    .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_NODENAME", format!("sentinel{port}@localhost"))
                    .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_DIST_PORT", dist.to_string())
                    .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", d.join("logs"))
                    .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
                    .env("RABBITMQ_PID_FILE", d.join("pid"));
                c
            },
        )
    }

    /// aedes 1.2 with aedes-stats publishing `$SYS/<id>/...` every second, anonymous clients
    /// allowed, Nagle left on (Node's default) and a random instance id.
    pub fn aedes() -> Option<Broker> {
        Broker::aedes_with(None, false)
    }

    /// aedes with a fixed instance id (`$SYS/<id>/...`) and/or `noDelay` on every accepted
    /// socket (`socket.setNoDelay(true)`).
    /// `None`, after printing why, where the machine's Node.js is older than aedes 1.x needs
    /// (Debian 12 ships 18): the only case in which the aedes tests do not run.
    pub fn aedes_with(id: Option<&str>, no_delay: bool) -> Option<Broker> {
        let node = Command::new("node")
            .args(["-p", "process.versions.node"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let major: u32 = node
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 20 {
            eprintln!(
                "SKIPPED: the aedes tests need Node.js >= 20 (aedes 1.2.0's engines); node here: {:?}",
                if node.is_empty() { "missing" } else { &node }
            );
            return None;
        }
        let install = "npm install --prefix target/tools/aedes aedes@1.2.0 aedes-stats@4.0.0";
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let modules = root.join("target/tools/aedes");
        for pkg in ["aedes", "aedes-stats"] {
            let manifest = modules.join("node_modules").join(pkg).join("package.json");
            assert!(
                manifest.is_file(),
                "aedes: {} is missing ({install}; scripts/install-deps.sh does it)",
                manifest.display()
            );
        }
        let script = root.join("tests/it/support/aedes-broker.cjs");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        Some(Broker::spawn(
            "aedes",
            &format!("node (Node.js >= 20) and {install}"),
            port,
            dir,
            |_| {
                let mut c = Command::new("node");
                c.arg(&script)
                    .arg("--modules")
                    .arg(&modules)
                    .arg("--port")
                    .arg(port.to_string());
                if let Some(id) = id {
                    c.arg("--id").arg(id);
                }
                if no_delay {
                    c.arg("--no-delay");
                }
                c
            },
        ))
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        format!("--- {} log ---\n{log}", self.name)
    }
}
