//! The real `mqtt-sentinel` binary, started with a temp config on `127.0.0.1:0`; its stderr
//! is captured (for secret checks), its listen address read from the startup log line.
//! Killed on drop.

use super::scrape::{HttpResponse, Scrape, get};
use super::wait::wait_until;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mqtt-sentinel");

pub struct Sentinel {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Sentinel {
    /// Start with `yaml` (which must not set `listen`).
    pub fn start(yaml: &str) -> Sentinel {
        Self::start_in(yaml, None)
    }

    /// Watch `broker` under the name `m`; `extra` is more YAML for that broker entry, each
    /// line indented by four spaces (`"    keep_alive: 2s\n"`).
    pub fn watching(broker: &super::Mosquitto, extra: &str) -> Sentinel {
        Self::start(&format!(
            "brokers:\n  - name: m\n    url: {}\n{extra}",
            broker.url()
        ))
    }

    /// Wait until broker `m` is connected and its `$SYS` uptime has arrived.
    pub fn wait_collecting(&self) -> Scrape {
        self.wait_scrape(
            Duration::from_secs(30),
            "connected with $SYS values",
            |sc| {
                sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
                    && sc
                        .value("mqtt_broker_uptime_seconds", &[("broker", "m")])
                        .is_some()
            },
        )
    }

    /// Start with the working directory `cwd`.
    pub fn start_in(yaml: &str, cwd: Option<&Path>) -> Sentinel {
        Self::spawn(Path::new(BIN), yaml, cwd)
    }

    /// Start `program` (another build of mqtt-sentinel, e.g. the release binary the
    /// container image holds) instead of the test build.
    pub fn start_program(program: &Path, yaml: &str) -> Sentinel {
        Self::spawn(program, yaml, None)
    }

    fn spawn(program: &Path, yaml: &str, cwd: Option<&Path>) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("sentinel.yaml");
        std::fs::write(&config_path, format!("listen: \"127.0.0.1:0\"\n{yaml}")).expect("write");
        let mut cmd = Command::new(program);
        cmd.arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .env_remove("MQTT_SENTINEL_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("spawn mqtt-sentinel");
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut s = Sentinel {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            _dir: dir,
            config_path,
        };
        let log = s.log.clone();
        let exited = std::cell::Cell::new(false);
        let child = std::cell::RefCell::new(s.child.take());
        s.addr = wait_until(Duration::from_secs(30), "mqtt-sentinel listening", || {
            if let Some(Ok(Some(st))) = child.borrow_mut().as_mut().map(Child::try_wait)
                && !exited.replace(true)
            {
                panic!(
                    "mqtt-sentinel exited ({st}) before listening:\n{}",
                    log.lock().unwrap()
                );
            }
            let l = log.lock().unwrap();
            let at = l.find("listen=")? + "listen=".len();
            let end = l[at..].find([' ', '\n'])? + at;
            l[at..end].parse().ok()
        });
        s.child = child.into_inner();
        s
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (30 s deadline) until the log holds `needle`. The log is read from the process'
    /// pipe by a thread, so a line can arrive after a scrape already shows what it reports:
    /// a positive log check waits, never asserts on the log at one instant.
    pub fn wait_log(&self, needle: &str) {
        wait_until(
            Duration::from_secs(30),
            &format!("log line {needle:?}"),
            || self.logs().contains(needle).then_some(()),
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        get(self.addr, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn post(&self, path: &str) -> HttpResponse {
        super::scrape::request(self.addr, "POST", path, &[])
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Send a signal (`"-HUP"`, `"-TERM"`) to the process.
    pub fn signal(&self, sig: &str) {
        super::signal(self.pid(), sig);
    }

    pub fn scrape(&self) -> Scrape {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        Scrape::parse(&r.body)
    }

    /// Wait until a scrape satisfies `cond`; returns that scrape.
    pub fn wait_scrape(
        &self,
        within: Duration,
        what: &str,
        cond: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        wait_until(within, what, || {
            let s = self.scrape();
            cond(&s).then_some(s)
        })
    }

    /// SIGTERM, then wait (bounded) for exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        wait_until(within, "mqtt-sentinel exits after SIGTERM", || {
            child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}
