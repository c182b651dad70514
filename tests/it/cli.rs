//! The command line: check, help, version, config from the environment, exit codes.

use crate::support::sentinel::BIN;
use std::process::Command;

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn check_valid_and_invalid() {
    let ok = Command::new(BIN)
        .args(["check", "--config", &fixture("good/full.yaml")])
        .env("MQTT_TEST_PASSWORD", "pw-from-env-77")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("brokers: 2"), "{out}");
    assert!(!out.contains("pw-from-env-77"), "{out}");

    let bad_path = fixture("bad/bad-listen.yaml");
    let bad = Command::new(BIN)
        .args(["check", "--config", &bad_path])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        format!(
            "{bad_path}:1:9: listen: invalid address \"0.0.0.0:99999\": expected ip:port such as \"0.0.0.0:10883\"\n"
        )
    );
    // the same file given through the environment, and to `run`
    let run = Command::new(BIN)
        .env("MQTT_SENTINEL_CONFIG", &bad_path)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr)
            .starts_with(&format!("error: {bad_path}:1:9: listen:"))
    );
    let missing = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("/nonexistent/x.yaml: cannot read config file")
    );
}

#[test]
fn check_without_config_validates_the_embedded_default() {
    let out = Command::new(BIN)
        .arg("check")
        .env_remove("MQTT_SENTINEL_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("<embedded default config>: configuration is valid"),
        "{text}"
    );
    assert!(text.contains("listen: 0.0.0.0:10883"), "{text}");
    assert!(text.contains("local: mqtt://localhost:1883"), "{text}");
}

#[test]
fn help_and_version() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let h = String::from_utf8_lossy(&help.stdout);
    for word in ["check", "run", "--config", "MQTT_SENTINEL_CONFIG"] {
        assert!(h.contains(word), "{word} missing from --help:\n{h}");
    }
    let v = Command::new(BIN).arg("--version").output().unwrap();
    assert!(v.status.success());
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("mqtt-sentinel {}\n", env!("CARGO_PKG_VERSION"))
    );
    let usage = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn healthcheck_subcommand() {
    let s = crate::support::Sentinel::start("brokers: []\n");
    // exit code and stderr of `mqtt-sentinel healthcheck ARGS`
    let hc = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("healthcheck")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = hc(&["--url", &format!("http://{}/healthz", s.addr)]);
    assert_eq!(code, Some(0), "{err}");
    // the config's listen address is used by default (0.0.0.0 becomes loopback)
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        format!("listen: \"0.0.0.0:{}\"\nbrokers: []\n", s.addr.port()),
    )
    .unwrap();
    let (code, err) = hc(&["--config", &f.display().to_string()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = hc(&["--url", &format!("http://{}/nope", s.addr)]);
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, err) = hc(&["--url", &format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("unhealthy: "), "{err}");
}
