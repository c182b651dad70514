//! The endpoint secured with an exporter-toolkit web config, checked with real TLS clients
//! (curl, openssl s_client): mTLS, basic auth, headers, TLS 1.1 refused, and a web config
//! that is re-read when it changes (a broken one keeps the last good one).

use crate::support::certs;
use crate::support::{Sentinel, wait_until};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 4).unwrap()
}

fn web_yaml(pki: &certs::Pki, users: &[(&str, &str)]) -> String {
    let mut y = format!(
        "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {:?}\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n",
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.ca()
    );
    for (u, p) in users {
        y.push_str(&format!("  {u}: {}\n", hash(p)));
    }
    y
}

/// `curl` against `path` with the client certificate `cert` (a name in the PKI dir or none)
/// and `user` (`name:password`); returns (exit code, HTTP status, headers+body).
fn curl(
    s: &Sentinel,
    pki: &certs::Pki,
    path: &str,
    cert: Option<&str>,
    user: Option<&str>,
) -> (i32, u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(pki.ca())
        .arg(format!("https://localhost:{}{path}", s.addr.port()))
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", s.addr.port()),
        ]);
    if let Some(n) = cert {
        c.arg("--cert")
            .arg(pki.path(&format!("{n}.crt")))
            .arg("--key")
            .arg(pki.path(&format!("{n}.key")));
    }
    if let Some(u) = user {
        c.args(["-u", u]);
    }
    let out: Output = c.output().expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (out.status.code().unwrap_or(-1), status, text)
}

fn write_web(path: &Path, yaml: &str) {
    // A new size or mtime tells the server to re-read it; write-then-rename is atomic.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn tls_client_certs_basic_auth_and_headers_with_real_clients() {
    let pki = certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    write_web(&web, &web_yaml(&pki, &[("alice", "s3cret")]));
    let s = Sentinel::start(&format!(
        "web: {{ config_file: {:?} }}\nbrokers: []\nrules: {{ files: [] }}\n",
        web.display().to_string()
    ));

    let (code, status, text) = curl(&s, &pki, "/metrics", Some("client"), Some("alice:s3cret"));
    assert_eq!((code, status), (0, 200), "{text}");
    assert!(
        text.contains("mqtt_sentinel_web_config_last_reload_successful 1"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{text}"
    );

    let (_, status, text) = curl(&s, &pki, "/metrics", Some("client"), Some("alice:wrong"));
    assert_eq!(status, 401, "{text}");
    let (_, status, text) = curl(&s, &pki, "/metrics", Some("client"), None);
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{text}"
    );
    let (_, status, _) = curl(&s, &pki, "/metrics", Some("client"), Some("mallory:s3cret"));
    assert_eq!(status, 401);
    // kubelet probes carry no credentials
    let (_, status, _) = curl(&s, &pki, "/healthz", Some("client"), None);
    assert_eq!(status, 200);

    // no client certificate, or one from another CA: no TLS session at all
    let (code, status, text) = curl(&s, &pki, "/healthz", None, Some("alice:s3cret"));
    assert!(
        code != 0 && status == 0,
        "no client cert: curl {code} {text}"
    );
    let (code, status, text) = curl(&s, &pki, "/healthz", Some("other-ca"), Some("alice:s3cret"));
    assert!(
        code != 0 && status == 0,
        "foreign client cert: curl {code} {text}"
    );

    // TLS 1.1 is refused (rustls has nothing below 1.2), TLS 1.2 and 1.3 work
    for (flag, ok) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", s.addr.port()),
                flag,
            ])
            .arg("-CAfile")
            .arg(pki.ca())
            .arg("-cert")
            .arg(pki.path("client.crt"))
            .arg("-key")
            .arg(pki.path("client.key"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let negotiated = log.contains("Verify return code: 0 (ok)")
            && !log.contains("no peer certificate available");
        assert_eq!(negotiated, ok, "{flag}: {log}");
    }

    // `healthcheck` (the image has no shell): behind TLS a listening socket is alive
    let hc = |url: &str| {
        Command::new(crate::support::sentinel::BIN)
            .args(["healthcheck", "--url", url])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(hc(&format!("https://127.0.0.1:{}/healthz", s.addr.port())));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(
        !hc(&format!("https://127.0.0.1:{closed}/healthz")),
        "nothing listens there"
    );

    // a broken web config keeps the last good one and says so
    write_web(&web, "tls_server_config: [\n");
    let (code, status, text) = curl(&s, &pki, "/metrics", Some("client"), Some("alice:s3cret"));
    assert_eq!((code, status), (0, 200), "{text}");
    assert!(
        text.contains("mqtt_sentinel_web_config_last_reload_successful 0"),
        "{text}"
    );
    s.wait_log("web config does not load");
    // a good one is picked up by the next connection
    write_web(&web, &web_yaml(&pki, &[("bob", "hunter2")]));
    wait_until(Duration::from_secs(30), "bob accepted", || {
        (curl(&s, &pki, "/metrics", Some("client"), Some("bob:hunter2")).1 == 200).then_some(())
    });
    let (_, status, _) = curl(&s, &pki, "/metrics", Some("client"), Some("alice:s3cret"));
    assert_eq!(status, 401, "alice was removed");
}
