//! Every example config passes `mqtt-sentinel check`; the Kubernetes examples are valid YAML
//! with the settings the README promises.

use crate::support::sentinel::BIN;
use std::path::Path;
use std::process::Command;

#[test]
fn every_example_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let secrets = tempfile::tempdir().unwrap();
    let file = |n: &str| {
        let p = secrets.path().join(n);
        std::fs::write(&p, "placeholder\n").unwrap();
        p
    };
    let env = [
        ("MQTT_PASSWORD_FILE", file("password")),
        ("MQTT_CA_FILE", file("ca.pem")),
        ("MQTT_CLIENT_CERT_FILE", file("client.pem")),
        ("MQTT_CLIENT_KEY_FILE", file("client.key")),
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
    assert!(n >= 4, "{n} example configs");
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
        .replace("/run/secrets/mqtt/password", &pw.display().to_string());
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
