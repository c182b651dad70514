//! Every example config passes `mqtt-sentinel check`; the Kubernetes examples are valid YAML
//! with the settings the README promises.

use crate::support::sentinel::BIN;
use std::path::Path;
use std::process::Command;

#[test]
fn every_example_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let secrets = tempfile::tempdir().unwrap();
    let file = |n: &str, content: &str| {
        let p = secrets.path().join(n);
        std::fs::write(&p, content).unwrap();
        p
    };
    // `check` reads TLS files as PEM: real ones.
    let pki = crate::support::certs::generate();
    let pem = |n: &str| std::fs::read_to_string(pki.path(n)).unwrap();
    let env = [
        ("MQTT_PASSWORD_FILE", file("password", "placeholder\n")),
        ("MQTT_CA_FILE", file("ca.pem", &pem("ca.crt"))),
        (
            "MQTT_CLIENT_CERT_FILE",
            file("client.pem", &pem("client.crt")),
        ),
        (
            "MQTT_CLIENT_KEY_FILE",
            file("client.key", &pem("client.key")),
        ),
        (
            "SLACK_WEBHOOK_URL_FILE",
            file(
                "slack",
                "https://hooks.slack.com/services/T0/B0/placeholder\n",
            ),
        ),
        (
            "PAGERDUTY_ROUTING_KEY_FILE",
            file("pd", "0123456789abcdef0123456789abcdef\n"),
        ),
        (
            "WEBHOOK_SIGNING_SECRET_FILE",
            file("whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"),
        ),
    ];
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let out = Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&p)
            .envs(env.clone())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 5, "{n} example configs");
}

#[test]
fn kubernetes_sidecar_example() {
    use serde::Deserialize;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/kubernetes/mosquitto-with-sentinel.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for k in ["ConfigMap", "Secret", "Deployment", "Service", "PodMonitor"] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let c = containers
        .iter()
        .find(|c| c["name"] == "mqtt-sentinel")
        .expect("sidecar");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 10883);

    // The sentinel config in the ConfigMap passes `check` (secret path swapped for a temp file).
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "mqtt-sentinel")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "x\n").unwrap();
    let cfg = cm["data"]["sentinel.yaml"]
        .as_str()
        .unwrap()
        .replace("/run/secrets/mqtt/password", &pw.display().to_string())
        .replace("/var/lib/mqtt-sentinel", &dir.path().display().to_string());
    let f = dir.path().join("sentinel.yaml");
    std::fs::write(&f, cfg).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_compose_stack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/docker-compose");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap())
            .unwrap();
    for svc in [
        "mosquitto",
        "mqtt-sentinel",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(compose["services"][svc].is_mapping(), "service {svc}");
    }
    let sentinel = &compose["services"]["mqtt-sentinel"];
    assert_eq!(sentinel["read_only"], true);
    assert!(sentinel["environment"]["MQTT_SENTINEL_CONFIG"].is_string());
    // every file the stack mounts exists
    for svc in compose["services"].as_mapping().unwrap().values() {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            assert!(dir.join(host).exists(), "{host} is mounted but missing");
        }
    }
    let prom = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.join("prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(
        prom.status.success(),
        "{}{}",
        String::from_utf8_lossy(&prom.stdout),
        String::from_utf8_lossy(&prom.stderr)
    );
    let check = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(dir.join("sentinel.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn docker_compose_mosquitto_conf_starts_a_broker() {
    use std::time::Duration;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/docker-compose");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = std::fs::read_to_string(dir.join("mosquitto.conf"))
        .unwrap()
        .replace("listener 1883", &format!("listener {port} 127.0.0.1"));
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("mosquitto.conf");
    std::fs::write(&f, conf + "user root\n").unwrap();
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started =
        crate::support::wait_until(Duration::from_secs(30), "example mosquitto accepts", || {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(Err(st));
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| Ok(()))
        });
    let _ = child.kill();
    let _ = child.wait();
    assert!(started.is_ok(), "mosquitto exited: {started:?}");
}
