//! Connecting: absent brokers, credentials, TLS and mTLS, read-only working directory.

use crate::support::certs;
use crate::support::mosquitto::ListenerTls;
use crate::support::wait_until;
use crate::support::{Mosquitto, Sentinel};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// No stopwatch: the endpoints are shown not to wait for a broker by answering while a
/// connect attempt is still open (a listener that accepts and never answers, with a
/// `connect_timeout` longer than any wait here), and while another broker refuses.
#[test]
fn absent_broker_does_not_delay_the_endpoints() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A port that accepts and never sends a CONNACK.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    hang.set_nonblocking(true).unwrap();
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: gone\n    url: mqtt://127.0.0.1:{port}\n    reconnect: {{initial_backoff: 50ms, max_backoff: 200ms}}\n  - name: hang\n    url: mqtt://127.0.0.1:{}\n    connect_timeout: 300s\n",
        hang.local_addr().unwrap().port()
    ));
    // the attempt to `hang` is open from here on, for 300 s
    let _held = wait_until(Duration::from_secs(30), "a connect attempt to hang", || {
        hang.accept().ok()
    });
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
    }
    let sc = s.scrape();
    assert_eq!(sc.value("mqtt_up", &[("broker", "gone")]), Some(0.0));
    assert_eq!(sc.value("mqtt_up", &[("broker", "hang")]), Some(0.0));
    assert!(
        sc.find("mqtt_connects_total", &[("broker", "hang")])
            .is_empty(),
        "answered while the attempt to hang was still open"
    );
    let sc = s.wait_scrape(Duration::from_secs(20), "refused attempts counted", |sc| {
        sc.value(
            "mqtt_connects_total",
            &[("broker", "gone"), ("result", "refused")],
        ) >= Some(2.0)
    });
    assert_eq!(sc.value("mqtt_up", &[("broker", "gone")]), Some(0.0));
    assert!(sc.names_with_prefix("mqtt_broker_").is_empty());
    // one warning for the outage, not one per attempt
    assert_eq!(
        s.logs()
            .lines()
            .filter(|l| l.contains("cannot connect") && l.contains("broker=gone"))
            .count(),
        1,
        "{}",
        s.logs()
    );
}

const GOOD: &str = "correct-horse-battery";
const BAD: &str = "wrong-staple-9f3a";

#[test]
fn credentials_are_used_and_never_shown() {
    let broker = Mosquitto::builder().user("monitor", GOOD).start();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{GOOD}\n")).unwrap();
    let yaml = format!(
        "log: {{level: debug}}\nbrokers:\n\
         \x20 - {{name: good, url: {u}, username: monitor, password_file: {f}}}\n\
         \x20 - {{name: bad5, url: {u}, username: monitor, password: {BAD}, reconnect: {{initial_backoff: 50ms, max_backoff: 200ms}}}}\n\
         \x20 - {{name: bad311, url: {u}, protocol: v3.1.1, username: monitor, password: {BAD}, reconnect: {{initial_backoff: 50ms, max_backoff: 200ms}}}}\n",
        u = broker.url(),
        f = pw_file.display()
    );
    let s = Sentinel::start(&yaml);
    let sc = s.wait_scrape(
        Duration::from_secs(30),
        "good up, bad ones refused twice",
        |sc| {
            sc.value("mqtt_up", &[("broker", "good")]) == Some(1.0)
                && sc.value(
                    "mqtt_connects_total",
                    &[("broker", "bad5"), ("result", "not_authorized")],
                ) >= Some(2.0)
                && sc.value(
                    "mqtt_connects_total",
                    &[("broker", "bad311"), ("result", "not_authorized")],
                ) >= Some(2.0)
        },
    );
    assert_eq!(sc.value("mqtt_up", &[("broker", "bad5")]), Some(0.0));
    assert_eq!(sc.value("mqtt_up", &[("broker", "bad311")]), Some(0.0));
    // no other result for the refused brokers
    for b in ["bad5", "bad311"] {
        let results: Vec<String> = sc
            .find("mqtt_connects_total", &[("broker", b)])
            .iter()
            .map(|x| x.labels["result"].clone())
            .collect();
        assert_eq!(results, ["not_authorized"], "{b}");
    }
    let check = Command::new(crate::support::sentinel::BIN)
        .args(["check", "--config"])
        .arg(&s.config_path)
        .output()
        .unwrap();
    assert!(check.status.success());
    let everything = format!(
        "{}\n{}\n{}\n{}\n{}",
        s.logs(),
        s.get("/metrics").body,
        s.get("/").body,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(everything.contains("password <secret>"), "{everything}");
    for secret in [GOOD, BAD] {
        assert!(
            !everything.contains(secret),
            "secret {secret} leaked:\n{everything}"
        );
    }
}

fn wait_result(s: &Sentinel, broker: &str, result: &str) {
    s.wait_scrape(
        Duration::from_secs(30),
        &format!("{broker}: {result}"),
        |sc| {
            sc.value(
                "mqtt_connects_total",
                &[("broker", broker), ("result", result)],
            ) >= Some(1.0)
        },
    );
}

#[test]
fn tls_and_mtls() {
    let pki = certs::generate();
    let tls = Mosquitto::builder()
        .tls(ListenerTls::from_pki(&pki, false))
        .start();
    let mtls = Mosquitto::builder()
        .tls(ListenerTls::from_pki(&pki, true))
        .start();
    let p = |n: &str| pki.path(n).display().to_string();
    let fast = "reconnect: {initial_backoff: 100ms, max_backoff: 500ms}";
    let yaml = format!(
        "brokers:\n\
         \x20 - {{name: tls-ok, url: {t}, tls: {{ca_file: {ca}}}}}\n\
         \x20 - {{name: tls-wrong-ca, url: {t}, {fast}, tls: {{ca_file: {other}}}}}\n\
         \x20 - {{name: tls-insecure, url: {t}, tls: {{insecure_skip_verify: true}}}}\n\
         \x20 - {{name: mtls-ok, url: {m}, tls: {{ca_file: {ca}, cert_file: {cc}, key_file: {ck}}}}}\n\
         \x20 - {{name: mtls-no-cert, url: {m}, {fast}, tls: {{ca_file: {ca}}}}}\n",
        t = tls.url(),
        m = mtls.url(),
        ca = p("ca.crt"),
        other = p("other-ca.crt"),
        cc = p("client.crt"),
        ck = p("client.key"),
    );
    let s = Sentinel::start(&yaml);
    s.wait_scrape(
        Duration::from_secs(30),
        "good TLS brokers up with $SYS",
        |sc| {
            ["tls-ok", "tls-insecure", "mtls-ok"].iter().all(|b| {
                sc.value("mqtt_up", &[("broker", b)]) == Some(1.0)
                    && sc
                        .value("mqtt_broker_uptime_seconds", &[("broker", b)])
                        .is_some()
            })
        },
    );
    wait_result(&s, "tls-wrong-ca", "tls_certificate");
    wait_result(&s, "mtls-no-cert", "tls_handshake");
    let sc = s.scrape();
    for b in ["tls-wrong-ca", "mtls-no-cert"] {
        assert_eq!(sc.value("mqtt_up", &[("broker", b)]), Some(0.0), "{b}");
        assert_eq!(
            sc.value(
                "mqtt_connects_total",
                &[("broker", b), ("result", "success")]
            ),
            None,
            "{b}"
        );
    }
    s.wait_log("TLS certificate verification is OFF");
}

#[test]
fn read_only_working_directory_stays_empty_and_sigterm_exits_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let broker = Mosquitto::start();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut s = Sentinel::start_in(
        &format!("brokers:\n  - name: m\n    url: {}\n", broker.url()),
        Some(cwd.path()),
    );
    s.wait_collecting();
    let t = Instant::now();
    let status = s.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}\n{}", s.logs());
    eprintln!("graceful shutdown took {:?}", t.elapsed());
    let entries: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        entries.is_empty(),
        "files written to the working directory: {entries:?}"
    );
    s.wait_log("stopped broker=m");
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Two instances with the same explicit client id: the broker hands the session to the
/// newer one and closes the older (mosquitto 2.0 sends no "session taken over" reason, it
/// just closes). Sessions that keep ending right after they start are flapping: each
/// instance says so once, counts the disconnects, and reconnects at the maximum backoff
/// instead of kicking the other straight back.
#[test]
fn duplicate_client_id_backs_off_instead_of_a_tug_of_war() {
    let broker = Mosquitto::start();
    let extra = "    client_id: dup-test\n    reconnect: { initial_backoff: 100ms, max_backoff: 4s }\n    probes: []\n";
    let a = Sentinel::watching(&broker, extra);
    a.wait_scrape(Duration::from_secs(30), "a connected", |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
    });
    let b = Sentinel::watching(&broker, extra);
    let flapping = |s: &Sentinel| s.logs().contains("ended our last sessions within seconds");
    wait_until(Duration::from_secs(30), "both notice the flapping", || {
        (flapping(&a) && flapping(&b)).then_some(())
    });
    let connects = |s: &Sentinel| {
        s.scrape()
            .value(
                "mqtt_connects_total",
                &[("broker", "m"), ("result", "success")],
            )
            .unwrap_or(0.0)
    };
    // An observation window, not a synchronisation: count hand-overs over at least 12 s. The
    // window spans the scrapes too, and a slow machine only lowers the count, never raises it.
    let start = std::time::Instant::now();
    let before = connects(&a) + connects(&b);
    std::thread::sleep(Duration::from_secs(12));
    let during = connects(&a) + connects(&b) - before;
    let window = start.elapsed().as_secs_f64();
    // at the cap every reconnect waits at least max/2 = 2 s, per instance
    assert!(
        during <= 2.0 * (window / 2.0 + 1.0),
        "{during} connects in {window:.1} s\n{}\n{}",
        a.logs(),
        b.logs()
    );
    for s in [&a, &b] {
        assert_eq!(
            s.logs().matches("ended our last sessions").count(),
            1,
            "{}",
            s.logs()
        );
        assert!(
            s.scrape().value(
                "mqtt_disconnects_total",
                &[("broker", "m"), ("reason", "connection_lost")]
            ) >= Some(3.0)
        );
    }
}
