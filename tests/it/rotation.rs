//! Every file the configuration names is used as it is on disk at the next connection,
//! handshake or delivery, rotated the way Kubernetes rotates a Secret volume (a new
//! timestamped directory, a `..data_tmp` symlink renamed over `..data`) or copied in place;
//! a file that became invalid keeps the last good content, is logged and shows in
//! `mqtt_sentinel_file_last_reload_successful{field}`. Real mosquitto, curl, openssl and a
//! real webhook sink.

use crate::support::certs::{self, Pki};
use crate::support::mosquitto::ListenerTls;
use crate::support::secretdir::SecretDir;
use crate::support::sink::{Request, Sink};
use crate::support::{Mosquitto, Sentinel, wait_until};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// The TLS secret of `pki`: server certificate, key and the CA for client certificates.
fn tls_secret(pki: &Pki) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("tls.crt", read(&pki.path("server.crt"))),
        ("tls.key", read(&pki.path("server.key"))),
        ("ca.crt", read(&pki.ca())),
    ]
}

fn as_files<'a>(v: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    v.iter().map(|(n, c)| (*n, c.as_slice())).collect()
}

/// `curl` over TLS trusting `pki`'s CA and presenting its client certificate: (exit code,
/// HTTP status, headers and body).
fn curl(s: &Sentinel, pki: &Pki, path: &str) -> (i32, u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(pki.ca())
        .arg("--cert")
        .arg(pki.path("client.crt"))
        .arg("--key")
        .arg(pki.path("client.key"))
        .arg(format!("https://localhost:{}{path}", s.addr.port()))
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", s.addr.port()),
        ])
        .output()
        .expect("curl is installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (out.status.code().unwrap_or(-1), status, text)
}

/// The SHA-256 fingerprint of the certificate the server presents (openssl s_client).
fn served_fingerprint(s: &Sentinel, pki: &Pki) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", s.addr.port()),
        ])
        .arg("-cert")
        .arg(pki.path("client.crt"))
        .arg("-key")
        .arg(pki.path("client.key"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let log = String::from_utf8_lossy(&out.stdout);
    let begin = log
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = log
        .find("-----END CERTIFICATE-----")
        .expect("a certificate")
        + 25;
    fingerprint_pem(log[begin..end].as_bytes())
}

fn fingerprint_pem(pem: &[u8]) -> String {
    let mut c = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    c.stdin.take().unwrap().write_all(pem).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn sample_line(text: &str, name: &str, field: &str) -> Option<String> {
    let prefix = format!("{name}{{field=\"{field}\"}} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .map(|l| l[prefix.len()..].to_owned())
}

#[test]
fn web_certificate_key_and_client_ca_are_read_at_each_connection() {
    let (one, two) = (certs::generate(), certs::generate());
    let secret_one = tls_secret(&one);
    let mut secret = SecretDir::new(&as_files(&secret_one));
    // The issue's minimal case: relative names next to web.yml.
    let web = secret.path("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .unwrap();
    let s = Sentinel::start(&format!(
        "web: {{ config_file: {:?} }}\nbrokers: []\nrules: {{ files: [] }}\n",
        web.display().to_string()
    ));
    let (code, status, text) = curl(&s, &one, "/metrics");
    assert_eq!((code, status), (0, 200), "{text}");
    assert_eq!(
        served_fingerprint(&s, &one),
        fingerprint_pem(&read(&one.path("server.crt")))
    );
    for f in ["cert_file", "key_file", "client_ca_file"] {
        let field = format!("tls_server_config.{f}");
        assert_eq!(
            sample_line(&text, "mqtt_sentinel_file_last_reload_successful", &field).as_deref(),
            Some("1"),
            "{field}: {text}"
        );
    }

    // Kubernetes swap: the next connection gets the new certificate and the new client CA,
    // web.yml untouched.
    secret.rotate(&as_files(&tls_secret(&two)));
    let (code, status, text) = curl(&s, &two, "/metrics");
    assert_eq!((code, status), (0, 200), "{text}");
    assert_eq!(
        served_fingerprint(&s, &two),
        fingerprint_pem(&read(&two.path("server.crt")))
    );
    let (code, _, text) = curl(&s, &one, "/healthz");
    assert_ne!(
        code, 0,
        "the old CA and client certificate no longer work: {text}"
    );

    // A certificate that does not parse: the last good one stays, logged and shown.
    let mut broken = tls_secret(&two);
    broken[0].1 = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec();
    secret.rotate(&as_files(&broken));
    let (code, status, text) = curl(&s, &two, "/metrics");
    assert_eq!((code, status), (0, 200), "{text}");
    assert_eq!(
        sample_line(
            &text,
            "mqtt_sentinel_file_last_reload_successful",
            "tls_server_config.cert_file"
        )
        .as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(
        sample_line(
            &text,
            "mqtt_sentinel_file_reload_failures_total",
            "tls_server_config.cert_file"
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    s.wait_log("web config does not load");

    // Copied in place (certbot, cp): taken at the next connection too.
    for (name, from) in [
        ("tls.crt", one.path("server.crt")),
        ("tls.key", one.path("server.key")),
        ("ca.crt", one.ca()),
    ] {
        std::fs::copy(from, secret.path(name)).unwrap();
    }
    let (code, status, text) = curl(&s, &one, "/metrics");
    assert_eq!((code, status), (0, 200), "{text}");
    assert_eq!(
        sample_line(
            &text,
            "mqtt_sentinel_file_last_reload_successful",
            "tls_server_config.cert_file"
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
}

fn connects(s: &Sentinel) -> f64 {
    s.scrape()
        .value(
            "mqtt_connects_total",
            &[("broker", "m"), ("result", "success")],
        )
        .unwrap_or(0.0)
}

#[test]
fn broker_password_file_is_read_at_each_connect() {
    let mut broker = Mosquitto::builder().user("sentinel", "pw-one").start();
    let mut secret = SecretDir::new(&[("password", b"pw-one\n")]);
    let pw = secret.path("password").display().to_string();
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    username: sentinel\n    password_file: {pw:?}\n    reconnect: {{ initial_backoff: 100ms, max_backoff: 500ms }}\nprobe_modules:\n  secure: {{ username: sentinel, password_file: {pw:?} }}\n",
        broker.url()
    ));
    s.wait_scrape(Duration::from_secs(10), "connected", |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
    });
    // `/probe` with the module: a fresh connection, so the file as it is now.
    let target = broker.url().replace(':', "%3A").replace('/', "%2F");
    let probe = || s.get(&format!("/probe?module=secure&target={target}")).body;

    // Both sides rotate; the reconnection after the broker restarts uses the new password.
    secret.rotate(&[("password", b"pw-two\n")]);
    broker.set_password("sentinel", "pw-two");
    let before = connects(&s);
    broker.restart();
    s.wait_scrape(Duration::from_secs(20), "reconnected with pw-two", |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
            && sc
                .value(
                    "mqtt_connects_total",
                    &[("broker", "m"), ("result", "success")],
                )
                .unwrap_or(0.0)
                > before
    });
    assert!(probe().contains("probe_success 1"), "{}", probe());

    // An empty password file (a rewrite caught half-way) keeps the last good password.
    secret.rotate(&[("password", b"")]);
    let before = connects(&s);
    broker.restart();
    let sc = s.wait_scrape(
        Duration::from_secs(20),
        "reconnected with the last good password",
        |sc| {
            sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
                && sc
                    .value(
                        "mqtt_connects_total",
                        &[("broker", "m"), ("result", "success")],
                    )
                    .unwrap_or(0.0)
                    > before
        },
    );
    assert_eq!(
        sc.value(
            "mqtt_sentinel_file_last_reload_successful",
            &[("field", "brokers[0].password_file")]
        ),
        Some(0.0)
    );
    let body = probe();
    assert!(body.contains("probe_success 1"), "{body}");
    assert_eq!(
        s.scrape().value(
            "mqtt_sentinel_file_last_reload_successful",
            &[("field", "probe_modules.secure.password_file")]
        ),
        Some(0.0)
    );
    s.wait_log("keeping its last good content");
    assert!(!s.logs().contains("pw-two"), "no password in the log");
}

fn failed_connects(s: &Sentinel) -> f64 {
    s.scrape()
        .find("mqtt_connects_total", &[("broker", "m")])
        .iter()
        .filter(|x| x.labels.get("result").map(String::as_str) != Some("success"))
        .map(|x| x.value)
        .sum()
}

#[test]
fn broker_tls_files_are_read_at_each_connect() {
    let (one, two) = (certs::generate(), certs::generate());
    // The CAs mosquitto accepts client certificates from: a file this test rewrites.
    let client_cas = one.path("client-cas.crt");
    std::fs::write(&client_cas, read(&one.ca())).unwrap();
    let tls = ListenerTls {
        ca: client_cas.clone(),
        ..ListenerTls::from_pki(&one, true)
    };
    let mut broker = Mosquitto::builder().tls(tls).start();
    let client = |ca: &Pki, p: &Pki| {
        vec![
            ("ca.crt", read(&ca.ca())),
            ("tls.crt", read(&p.path("client.crt"))),
            ("tls.key", read(&p.path("client.key"))),
        ]
    };
    let mut secret = SecretDir::new(&as_files(&client(&one, &one)));
    let s = Sentinel::watching(
        &broker,
        &format!(
            "    tls: {{ ca_file: {:?}, cert_file: {:?}, key_file: {:?} }}\n    reconnect: {{ initial_backoff: 100ms, max_backoff: 500ms }}\n",
            secret.path("ca.crt").display().to_string(),
            secret.path("tls.crt").display().to_string(),
            secret.path("tls.key").display().to_string(),
        ),
    );
    let reconnected = |before: f64, what: &str| {
        s.wait_scrape(Duration::from_secs(20), what, |sc| {
            sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
                && sc
                    .value(
                        "mqtt_connects_total",
                        &[("broker", "m"), ("result", "success")],
                    )
                    .unwrap_or(0.0)
                    > before
        })
    };
    reconnected(0.0, "connected over mTLS");

    // A client certificate from CA `two`, which the broker does not trust yet: the next
    // connect presents it and is refused.
    secret.rotate(&as_files(&client(&one, &two)));
    let failed = failed_connects(&s);
    broker.restart();
    wait_until(
        Duration::from_secs(20),
        "the new certificate refused",
        || (failed_connects(&s) > failed).then_some(()),
    );
    // The broker now trusts `two` too: the same certificate is accepted.
    let mut cas = read(&one.ca());
    cas.extend(read(&two.ca()));
    std::fs::write(&client_cas, cas).unwrap();
    let before = connects(&s);
    broker.restart();
    reconnected(before, "connected with the new client certificate");

    // A broken CA file: the broker is still verified with the last good CA.
    let mut broken = client(&one, &two);
    broken[0].1 = b"not a certificate\n".to_vec();
    secret.rotate(&as_files(&broken));
    let before = connects(&s);
    broker.restart();
    let sc = reconnected(before, "connected with the last good CA");
    assert_eq!(
        sc.value(
            "mqtt_sentinel_file_last_reload_successful",
            &[("field", "brokers[0].tls.ca_file")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sc.value(
            "mqtt_sentinel_file_last_reload_successful",
            &[("field", "brokers[0].tls.cert_file")]
        ),
        Some(1.0)
    );
}

/// Standard Webhooks: `v1,base64(HMAC-SHA256(key, id.timestamp.body))`.
fn signed_with(r: &Request, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(r.headers["webhook-id"].as_bytes());
    mac.update(b".");
    mac.update(r.headers["webhook-timestamp"].as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.headers.get("webhook-signature") == Some(&want)
}

const KEY_ONE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY_TWO: &str = "whsec_c2Vjb25kLXNpZ25pbmcta2V5LTEyMzQ1Ng==";

#[test]
fn notifier_url_routing_key_and_signing_secret_files_are_read_at_each_delivery() {
    let sink = Sink::start(&[], false);
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    let files = |url: &str, key: &str, rk: &str| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("url", format!("{url}\n").into_bytes()),
            ("signing", key.as_bytes().to_vec()),
            ("routing", rk.as_bytes().to_vec()),
        ]
    };
    let mut secret = SecretDir::new(&as_files(&files(&sink.url("/one"), KEY_ONE, "rk-one")));
    let s = Sentinel::start(&format!(
        r#"brokers: []
rules: {{ files: [{rules:?}], evaluation_interval: 200ms }}
notify:
  repeat_interval: 200ms
  receivers:
    - {{ name: hook, type: webhook, url_file: {url:?}, signing_secret_file: {signing:?} }}
    - {{ name: pager, type: pagerduty, url: "{pd}", routing_key_file: {routing:?} }}
  route:
    receiver: hook
    routes:
      - {{ receiver: hook, continue: true }}
      - {{ receiver: pager }}
"#,
        rules = rules.path().display().to_string(),
        url = secret.path("url").display().to_string(),
        signing = secret.path("signing").display().to_string(),
        routing = secret.path("routing").display().to_string(),
        pd = sink.url("/pd"),
    ));
    let delivered = |since: usize, path: &str, check: &dyn Fn(&Request) -> bool| {
        wait_until(Duration::from_secs(20), path, || {
            sink.requests()[since.min(sink.requests().len())..]
                .iter()
                .any(|r| r.path == path && check(r))
                .then_some(())
        })
    };
    let routing_key = |r: &Request| r.json()["routing_key"].as_str().map(str::to_owned);
    delivered(0, "/one", &|r| signed_with(r, KEY_ONE));
    delivered(0, "/pd", &|r| routing_key(r).as_deref() == Some("rk-one"));

    secret.rotate(&as_files(&files(&sink.url("/two"), KEY_TWO, "rk-two")));
    let since = sink.requests().len();
    delivered(since, "/two", &|r| signed_with(r, KEY_TWO));
    delivered(since, "/pd", &|r| {
        routing_key(r).as_deref() == Some("rk-two")
    });

    // Invalid files (not a URL, not base64, empty): deliveries go on with the last good.
    secret.rotate(&as_files(&files("not a url", "whsec_!!!", "")));
    s.wait_scrape(Duration::from_secs(20), "the three files refused", |sc| {
        [
            "notify.receivers[0].url_file",
            "notify.receivers[0].signing_secret_file",
            "notify.receivers[1].routing_key_file",
        ]
        .iter()
        .all(|f| {
            sc.value("mqtt_sentinel_file_last_reload_successful", &[("field", f)]) == Some(0.0)
        })
    });
    let since = sink.requests().len();
    delivered(since, "/two", &|r| signed_with(r, KEY_TWO));
    delivered(since, "/pd", &|r| {
        routing_key(r).as_deref() == Some("rk-two")
    });
    s.wait_log("keeping its last good content");
    let logs = s.logs();
    for secret in ["rk-two", "c2Vjb25k"] {
        assert!(!logs.contains(secret), "{secret} in the log");
    }
}
