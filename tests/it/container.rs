//! The container image, built without Docker or a registry (`scripts/build-image.sh`) and run
//! as a sidecar runs.
//!
//! Its settings (user, entrypoint, exposed port, healthcheck, `org.opencontainers.image.*`
//! labels, where the binary goes) are the `Dockerfile` runtime stage's: both files are parsed
//! and compared, and so is the built image's config. Then podman runs the image the way
//! `examples/kubernetes/mosquitto-with-sentinel.yaml` runs it: that sidecar's
//! `securityContext`, env, volumes, memory limit and probes become podman flags (`podman kube
//! play` would pull the pod's infra and mosquitto images from a registry), on the host network
//! beside a real mosquitto on loopback that has the example's ACL and Secret password. Checked:
//! `/metrics` (`mqtt_up 1`, `$SYS` series), the probes' paths, the image's own `HEALTHCHECK`
//! (`podman healthcheck run`), the Secret volume rotated on the host and picked up without a
//! restart, SIGTERM (`podman stop`) → exit 0 within the pod's grace period, and nothing written
//! in the container (`podman diff` empty). Skipped, with the reason printed, only where podman
//! cannot create a container at all.

use crate::support::scrape::{Scrape, get};
use crate::support::secretdir::SecretDir;
use crate::support::sentinel::rss_kib;
use crate::support::{Mosquitto, Sentinel, wait_until};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A label value only known when the image is built (`$MQTT_SENTINEL_REVISION`, `$revision`).
const BUILD_TIME: &str = "<set at build time>";

/// An image's settings, however they are spelt (Dockerfile, `buildah config`, the image).
#[derive(Debug, Default, PartialEq)]
struct ImageSettings {
    /// Where the binary is installed (Dockerfile `COPY --from`, the script's `install "$bin"`).
    binary: String,
    user: String,
    /// `port/protocol`
    ports: Vec<String>,
    entrypoint: Vec<String>,
    /// `["CMD", argv…]`
    healthcheck: Vec<String>,
    health_interval: Duration,
    health_timeout: Duration,
    health_retries: u64,
    labels: BTreeMap<String, String>,
}

fn label_value(v: &str) -> String {
    if v.contains('$') {
        BUILD_TIME.into()
    } else {
        v.into()
    }
}

fn with_protocol(port: &str) -> String {
    if port.contains('/') {
        port.into()
    } else {
        format!("{port}/tcp")
    }
}

fn duration(v: &str) -> Duration {
    humantime::parse_duration(v).unwrap_or_else(|e| panic!("duration {v:?}: {e}"))
}

fn json_array(v: &str, what: &str) -> Vec<String> {
    serde_json::from_str(v).unwrap_or_else(|e| panic!("{what} {v:?} is not a JSON array: {e}"))
}

fn shell_words(line: &str) -> Vec<String> {
    shlex::split(line).unwrap_or_else(|| panic!("unbalanced quotes in {line:?}"))
}

/// Logical lines: `\`-continued lines joined; comments and blank lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        let t = l.trim();
        if cur.is_empty() && (t.starts_with('#') || t.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// The settings of the Dockerfile's last stage (the runtime stage). An instruction this
/// test does not compare fails it, so a new one cannot slip past the script.
fn dockerfile_runtime_stage(text: &str) -> ImageSettings {
    let lines = logical_lines(text);
    let from = lines
        .iter()
        .rposition(|l| l.to_uppercase().starts_with("FROM "))
        .expect("Dockerfile: a FROM line");
    // Docker's defaults for options HEALTHCHECK leaves out
    let mut s = ImageSettings {
        health_interval: Duration::from_secs(30),
        health_timeout: Duration::from_secs(30),
        health_retries: 3,
        ..ImageSettings::default()
    };
    for l in &lines[from + 1..] {
        let (kw, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let rest = rest.trim();
        match kw.to_uppercase().as_str() {
            "ARG" => {}
            "USER" => s.user = rest.into(),
            "EXPOSE" => s.ports.extend(rest.split_whitespace().map(with_protocol)),
            "ENTRYPOINT" => s.entrypoint = json_array(rest, "Dockerfile ENTRYPOINT"),
            "LABEL" => {
                for kv in shell_words(rest) {
                    let (k, v) = kv
                        .split_once('=')
                        .unwrap_or_else(|| panic!("Dockerfile LABEL {kv:?}: no `=`"));
                    s.labels.insert(k.into(), label_value(v));
                }
            }
            "COPY" => {
                let w = shell_words(rest);
                assert!(
                    w.iter().any(|x| x.starts_with("--from=")),
                    "Dockerfile runtime stage copies {w:?} from the context: build-image.sh does not"
                );
                s.binary = w.last().expect("COPY destination").clone();
            }
            "HEALTHCHECK" => {
                let mut r = rest;
                while let Some(opt) = r.strip_prefix("--") {
                    let (o, after) = opt
                        .split_once(char::is_whitespace)
                        .expect("HEALTHCHECK CMD");
                    let (k, v) = o.split_once('=').expect("HEALTHCHECK --option=value");
                    match k {
                        "interval" => s.health_interval = duration(v),
                        "timeout" => s.health_timeout = duration(v),
                        "retries" => s.health_retries = v.parse().expect("retries"),
                        other => panic!("Dockerfile HEALTHCHECK --{other}: not compared yet"),
                    }
                    r = after.trim_start();
                }
                let cmd = r.strip_prefix("CMD").expect("HEALTHCHECK CMD [...]").trim();
                s.healthcheck = std::iter::once("CMD".to_owned())
                    .chain(json_array(cmd, "Dockerfile HEALTHCHECK CMD"))
                    .collect();
            }
            other => panic!(
                "Dockerfile runtime stage: {other} is not compared with scripts/build-image.sh; give the script the same and compare it here"
            ),
        }
    }
    s
}

/// The settings `scripts/build-image.sh` gives the image: its `buildah config` command and
/// the `install` of the binary.
fn build_script_settings(text: &str) -> ImageSettings {
    let lines = logical_lines(text);
    let config = lines
        .iter()
        .find(|l| l.starts_with("buildah config "))
        .expect("build-image.sh: a `buildah config` command");
    let words = shell_words(config);
    let mut s = ImageSettings::default();
    let mut it = words.iter().skip(2);
    while let Some(flag) = it.next() {
        if !flag.starts_with("--") {
            assert_eq!(flag, "$ctr", "buildah config's last word is the container");
            continue;
        }
        let v = it
            .next()
            .unwrap_or_else(|| panic!("buildah config {flag}: no value"));
        match flag.as_str() {
            "--user" => s.user = v.clone(),
            "--port" => s.ports.push(with_protocol(v)),
            "--entrypoint" => s.entrypoint = json_array(v, "buildah config --entrypoint"),
            // buildah splits "CMD a b" into ["CMD", "a", "b"]
            "--healthcheck" => s.healthcheck = v.split_whitespace().map(String::from).collect(),
            "--healthcheck-interval" => s.health_interval = duration(v),
            "--healthcheck-timeout" => s.health_timeout = duration(v),
            "--healthcheck-retries" => s.health_retries = v.parse().expect("retries"),
            "--label" => {
                let (k, v) = v.split_once('=').expect("--label k=v");
                s.labels.insert(k.into(), label_value(v));
            }
            other => panic!(
                "build-image.sh: buildah config {other} has no counterpart compared with the Dockerfile"
            ),
        }
    }
    let install = lines
        .iter()
        .map(|l| shell_words(l))
        .find(|w| w.first().is_some_and(|c| c == "install") && w.iter().any(|x| x == "$bin"))
        .expect("build-image.sh: `install … \"$bin\" \"$mnt/…\"`");
    s.binary = install
        .last()
        .and_then(|d| d.strip_prefix("$mnt"))
        .expect("the binary's destination under $mnt")
        .to_owned();
    s
}

/// `name=value` (a plain assignment) in a shell script.
fn script_var(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("build-image.sh sets no {name}="))
        .trim()
        .to_owned()
}

#[test]
fn build_image_script_matches_the_dockerfile_runtime_stage() {
    let docker = dockerfile_runtime_stage(&read("Dockerfile"));
    let script = build_script_settings(&read("scripts/build-image.sh"));
    assert_eq!(script, docker, "scripts/build-image.sh vs Dockerfile");
    // and they make sense: the entrypoint is the installed binary, the labels are the crate's
    assert_eq!(docker.entrypoint.first(), Some(&docker.binary));
    assert_eq!(docker.healthcheck.get(1), Some(&docker.binary));
    assert_eq!(docker.ports, ["10883/tcp"], "the default listen port");
    let label = |k: &str| docker.labels[&format!("org.opencontainers.image.{k}")].as_str();
    assert_eq!(label("title"), env!("CARGO_PKG_NAME"));
    assert_eq!(label("description"), env!("CARGO_PKG_DESCRIPTION"));
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(label("revision"), BUILD_TIME);
}

#[test]
fn the_parsers_read_what_they_compare() {
    let d = dockerfile_runtime_stage(
        "FROM a AS build\nUSER x\nFROM b\nLABEL k=\"v w\" \\\n  r=\"${R}\"\nUSER u:g\nEXPOSE 1 2/udp\nHEALTHCHECK --retries=5 \\\n  CMD [\"/b\", \"h\"]\nENTRYPOINT [\"/b\"]\n",
    );
    assert_eq!(d.user, "u:g");
    assert_eq!(d.ports, ["1/tcp", "2/udp"]);
    assert_eq!(d.healthcheck, ["CMD", "/b", "h"]);
    assert_eq!(d.health_retries, 5);
    assert_eq!(d.labels["k"], "v w");
    assert_eq!(d.labels["r"], BUILD_TIME);
    let s = build_script_settings(
        "install -m 0755 \"$bin\" \"$mnt/b\"\n# c\nbuildah config \\\n    --user u:g \\\n    --label k=\"v w\" \\\n    --healthcheck \"CMD /b h\" \\\n    \"$ctr\"\n",
    );
    assert_eq!(s.binary, "/b");
    assert_eq!(s.user, "u:g");
    assert_eq!(s.healthcheck, ["CMD", "/b", "h"]);
    assert_eq!(s.labels["k"], "v w");
}

/// podman with the storage and containers.conf `scripts/build-image.sh` wrote under
/// target/image (runc, cgroupfs, no default ulimits; the machine's /etc untouched).
fn podman(args: &[&str]) -> Command {
    let work = root().join("target/image");
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", work.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", work.join("storage.conf"))
        .args(args);
    c
}

fn output(mut c: Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("{c:?}: {e} (scripts/install-deps.sh installs podman)"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(c: Command) -> String {
    let desc = format!("{c:?}");
    let o = output(c);
    assert!(o.status.success(), "{desc}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// The built image's settings (`podman image inspect`, Docker format).
fn image_settings(inspect: &serde_json::Value, binary: &str) -> ImageSettings {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|x| x.as_str().expect("string").to_owned())
            .collect()
    };
    let c = &inspect["Config"];
    // podman 4 spells it "Healthcheck" in JSON ("HealthCheck" in Go templates)
    let h = &inspect["Healthcheck"];
    let ns = |v: &serde_json::Value| Duration::from_nanos(v.as_u64().expect("nanoseconds"));
    ImageSettings {
        binary: binary.into(),
        user: c["User"].as_str().unwrap_or_default().into(),
        ports: c["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| with_protocol(k))
            .collect(),
        entrypoint: strings(&c["Entrypoint"]),
        healthcheck: strings(&h["Test"]),
        health_interval: ns(&h["Interval"]),
        health_timeout: ns(&h["Timeout"]),
        health_retries: h["Retries"].as_u64().expect("Retries"),
        labels: c["Labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("org.opencontainers.image."))
            .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
            .collect(),
    }
}

/// A container, removed (`podman rm -f`) on drop; its log is printed when a test fails.
struct Container {
    name: String,
}

impl Container {
    fn pid(&self) -> u32 {
        ok(podman(&[
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &self.name,
        ]))
        .parse()
        .expect("pid")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let o = output(podman(&["logs", &self.name]));
            eprintln!("podman logs {}:\n{}", self.name, text(&o));
        }
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]).output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn scrape(addr: SocketAddr) -> Option<Scrape> {
    get(addr, "/metrics", &[])
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| Scrape::parse(&r.body))
}

fn connects(sc: &Scrape, broker: &str) -> f64 {
    sc.value(
        "mqtt_connects_total",
        &[("broker", broker), ("result", "success")],
    )
    .unwrap_or(0.0)
}

/// Kubernetes quantity (`64Mi`, `1Gi`, `128M`) as podman's `--memory` value.
fn memory_flag(q: &str) -> String {
    for (k8s, podman) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g")] {
        if let Some(n) = q.strip_suffix(k8s) {
            return format!("{n}{podman}");
        }
    }
    panic!("memory quantity {q:?}: not mapped to podman yet")
}

/// The example's documents, and the ones this test uses.
struct Example {
    docs: Vec<serde_yaml::Value>,
}

impl Example {
    fn load() -> Example {
        let t = read("examples/kubernetes/mosquitto-with-sentinel.yaml");
        Example {
            docs: serde_yaml::Deserializer::from_str(&t)
                .map(|d| serde_yaml::Value::deserialize(d).expect("YAML"))
                .collect(),
        }
    }

    fn doc(&self, kind: &str, name: &str) -> &serde_yaml::Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("example: no {kind} {name}"))
    }

    fn pod(&self) -> &serde_yaml::Value {
        &self.doc("Deployment", "mosquitto")["spec"]["template"]["spec"]
    }

    fn sidecar(&self) -> &serde_yaml::Value {
        self.pod()["containers"]
            .as_sequence()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == "mqtt-sentinel")
            .expect("the mqtt-sentinel container")
    }
}

fn s(v: &serde_yaml::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// `podman run` flags for the example's sidecar: env, securityContext, memory limit and
/// volumes (configMap and secret volumes from `host_dirs`, keyed by volume name; emptyDir as a
/// tmpfs). A field with no mapping here fails the test, so the example cannot promise more
/// than CI runs.
fn sidecar_flags(ex: &Example, host_dirs: &BTreeMap<String, PathBuf>) -> Vec<String> {
    let c = ex.sidecar();
    let mut f: Vec<String> = Vec::new();
    for e in c["env"].as_sequence().into_iter().flatten() {
        push2(
            &mut f,
            "--env",
            format!("{}={}", s(&e["name"]), s(&e["value"])),
        );
    }
    assert!(
        c["args"].is_null() && c["command"].is_null(),
        "the sidecar passes its config through MQTT_SENTINEL_CONFIG (the healthcheck reads it), not args"
    );
    let sc = c["securityContext"]
        .as_mapping()
        .expect("sidecar securityContext");
    let uid = c["securityContext"]["runAsUser"]
        .as_u64()
        .expect("runAsUser");
    for (k, v) in sc {
        match s(k) {
            "runAsUser" => push2(&mut f, "--user", uid.to_string()),
            "runAsNonRoot" => assert!(
                v.as_bool() == Some(true) && uid != 0,
                "runAsNonRoot with uid {uid}"
            ),
            "readOnlyRootFilesystem" => {
                assert_eq!(v.as_bool(), Some(true));
                // as in Kubernetes: no tmpfs on /tmp, /run, /var/tmp either
                f.push("--read-only".into());
                f.push("--read-only-tmpfs=false".into());
            }
            "allowPrivilegeEscalation" => {
                assert_eq!(v.as_bool(), Some(false));
                push2(&mut f, "--security-opt", "no-new-privileges".into());
            }
            "capabilities" => {
                for (what, list) in v.as_mapping().expect("capabilities") {
                    let opt = match s(what) {
                        "drop" => "--cap-drop",
                        "add" => "--cap-add",
                        other => panic!("capabilities.{other}"),
                    };
                    for cap in list.as_sequence().expect("capability list") {
                        push2(&mut f, opt, s(cap).into());
                    }
                }
            }
            other => panic!("securityContext.{other}: no podman flag mapped yet"),
        }
    }
    if let Some(m) = c["resources"]["limits"]["memory"].as_str() {
        push2(&mut f, "--memory", memory_flag(m));
    }
    let volumes = ex.pod()["volumes"].as_sequence().expect("volumes");
    for m in c["volumeMounts"].as_sequence().expect("volumeMounts") {
        let name = s(&m["name"]);
        let path = s(&m["mountPath"]);
        let v = volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"));
        if v["emptyDir"].is_mapping() {
            // the kubelet makes an emptyDir 0777; sizeLimit caps it
            let size = v["emptyDir"]["sizeLimit"]
                .as_str()
                .map(|q| format!(",size={}", memory_flag(q)))
                .unwrap_or_default();
            push2(&mut f, "--tmpfs", format!("{path}:rw,mode=0777{size}"));
        } else {
            let host = host_dirs
                .get(name)
                .unwrap_or_else(|| panic!("no host directory for volume {name}"));
            let ro = if m["readOnly"] == true { ":ro" } else { "" };
            push2(&mut f, "--volume", format!("{}:{path}{ro}", host.display()));
        }
    }
    f
}

/// The path and port name of the sidecar's `httpGet` probe `which`.
fn probe(ex: &Example, which: &str) -> (String, u64) {
    let c = ex.sidecar();
    let p = &c[which]["httpGet"];
    let port = match &p["port"] {
        serde_yaml::Value::Number(n) => n.as_u64().expect("port"),
        named => c["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|q| q["name"] == *named)
            .and_then(|q| q["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{which}: port {named:?}")),
    };
    (s(&p["path"]).to_owned(), port)
}

fn push2(f: &mut Vec<String>, a: &str, b: String) {
    f.push(a.into());
    f.push(b);
}

fn world_readable(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn image_runs_as_the_kubernetes_example_sidecar() {
    // The image: scripts/test.sh builds it before the tests (CI); built here when missing.
    let script = read("scripts/build-image.sh");
    let archive = root().join("target/image/mqtt-sentinel.tar");
    if !archive.exists() {
        let build = output({
            let mut c = Command::new("bash");
            c.arg(root().join("scripts/build-image.sh"));
            c
        });
        assert!(build.status.success(), "build-image.sh: {}", text(&build));
    }
    let image = script_var(&script, "name");
    let archive_str = archive.display().to_string();
    ok(podman(&["load", "--quiet", "-i", &archive_str]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(podman(&["image", "inspect", &image]))).expect("inspect JSON");
    let docker = dockerfile_runtime_stage(&read("Dockerfile"));
    let mut built = image_settings(&inspect[0], &docker.binary);
    let revision = built.labels["org.opencontainers.image.revision"].clone();
    assert!(
        revision.len() >= 7 && revision != "unknown",
        "revision label {revision:?}"
    );
    built.labels.insert(
        "org.opencontainers.image.revision".into(),
        BUILD_TIME.into(),
    );
    assert_eq!(built, docker, "the built image vs the Dockerfile");

    // Only where podman cannot create a container at all is this skipped (printed).
    let probe_run = output(podman(&[
        "run",
        "--rm",
        "--network",
        "host",
        &image,
        "--version",
    ]));
    if !probe_run.status.success() {
        let err = String::from_utf8_lossy(&probe_run.stderr);
        if probe_run.status.code() == Some(125) {
            eprintln!("SKIPPED: podman cannot run containers here: {err}");
            return;
        }
        panic!("the image does not run: {}", text(&probe_run));
    }

    // The example's broker side: its ACL, the Secret's user and password.
    let ex = Example::load();
    let config_map = ex.doc("ConfigMap", "mqtt-sentinel");
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(s(&config_map["data"]["sentinel.yaml"])).expect("sentinel.yaml");
    let broker_name = s(&config["brokers"][0]["name"]).to_owned();
    let user = s(&config["brokers"][0]["username"]).to_owned();
    let password = s(&ex.doc("Secret", "mqtt-sentinel")["stringData"]["password"]).to_owned();
    let mut broker = Mosquitto::builder()
        .user(&user, &password)
        .acl(s(&ex.doc("ConfigMap", "mosquitto")["data"]["acl"]))
        .start();

    // The sentinel's config: the example's, on a free loopback port, watching that broker.
    let listen_port = free_port();
    let (_, metrics_port) = probe(&ex, "livenessProbe");
    assert!(
        s(&config["listen"]).ends_with(&format!(":{metrics_port}")),
        "the probes' port is the configured listen port"
    );
    config["listen"] = format!("127.0.0.1:{listen_port}").into();
    config["brokers"][0]["url"] = broker.url().into();
    config["brokers"][0]["reconnect"] =
        serde_yaml::from_str("{ initial_backoff: 100ms, max_backoff: 500ms }").expect("yaml");
    let config_dir = tempfile::tempdir().expect("tempdir");
    world_readable(config_dir.path());
    let config_text = serde_yaml::to_string(&config).expect("yaml");
    std::fs::write(config_dir.path().join("sentinel.yaml"), &config_text).expect("write");
    let secret_key = Path::new(s(&config["brokers"][0]["password_file"]))
        .file_name()
        .expect("password file name")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let mut secret = SecretDir::new(&[(&secret_key, password.as_bytes())]);
    world_readable(secret.dir());
    let host_dirs = ex.pod()["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(|v| {
            let dir = if v["configMap"]["name"] == "mqtt-sentinel" {
                config_dir.path()
            } else if v["secret"]["secretName"] == "mqtt-sentinel" {
                secret.dir()
            } else {
                return None;
            };
            Some((s(&v["name"]).to_owned(), dir.to_path_buf()))
        })
        .collect();

    let name = format!("mqtt-sentinel-it-{}", std::process::id());
    let mut args: Vec<String> = ["run", "--detach", "--name", &name, "--network", "host"]
        .map(String::from)
        .to_vec();
    args.extend(sidecar_flags(&ex, &host_dirs));
    args.push(image.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], listen_port));
    let started = Instant::now();
    ok(podman(&args));
    let container = Container { name: name.clone() };
    let up = |sc: &Scrape| sc.value("mqtt_up", &[("broker", &broker_name)]) == Some(1.0);
    wait_until(Duration::from_secs(60), "the container: mqtt_up 1", || {
        scrape(addr).filter(up)
    });
    let cold_start = started.elapsed();
    let sc = wait_until(
        Duration::from_secs(30),
        "the container: $SYS series",
        || {
            scrape(addr).filter(|sc| {
                sc.value("mqtt_broker_uptime_seconds", &[("broker", &broker_name)])
                    .is_some()
            })
        },
    );
    assert!(
        sc.value("mqtt_broker_clients_connected", &[("broker", &broker_name)])
            .is_some(),
        "broker series"
    );

    // The probes the example declares, and the image's own HEALTHCHECK.
    for which in ["livenessProbe", "readinessProbe"] {
        let (path, _) = probe(&ex, which);
        let r = get(addr, &path, &[]).unwrap_or_else(|e| panic!("{which} {path}: {e}"));
        assert!((200..400).contains(&r.status), "{which} {path}: {r:?}");
    }
    ok(podman(&["healthcheck", "run", &name]));

    // Resident memory next to the bare release binary with the same config (paths on the host).
    let mut host_config = config.clone();
    if let serde_yaml::Value::Mapping(m) = &mut host_config {
        m.remove("listen");
    }
    // the text log format: the test harness reads the listen address from it
    if let serde_yaml::Value::Mapping(m) = &mut host_config["log"] {
        m.remove("format");
    }
    host_config["brokers"][0]["password_file"] =
        secret.path(&secret_key).display().to_string().into();
    let state_dir = tempfile::tempdir().expect("tempdir");
    host_config["rules"]["state_file"] = state_dir
        .path()
        .join("alerts.json")
        .display()
        .to_string()
        .into();
    let host_config = serde_yaml::to_string(&host_config).expect("yaml");
    let bare_started = Instant::now();
    let bare = Sentinel::start_program(&root().join("target/release/mqtt-sentinel"), &host_config);
    bare.wait_scrape(Duration::from_secs(60), "bare binary: mqtt_up 1", up);
    let bare_start = bare_started.elapsed();
    let (container_rss, bare_rss) = (rss_kib(container.pid()), rss_kib(bare.pid()));
    // Observations, not assertions: figures for the README (a loaded machine stretches them).
    eprintln!(
        "container: cold start to first mqtt_up 1: {} ms (bare binary: {} ms); RSS {container_rss} KiB (bare binary: {bare_rss} KiB)",
        cold_start.as_millis(),
        bare_start.as_millis()
    );
    drop(bare);

    // The Secret rotated on the host (as the kubelet does) and the broker's password changed:
    // the container reconnects with the new one, without a restart.
    let rotated = format!("{password}-rotated");
    secret.rotate(&[(&secret_key, rotated.as_bytes())]);
    broker.set_password(&user, &rotated);
    let before = connects(&scrape(addr).expect("scrape"), &broker_name);
    broker.restart();
    let sc = wait_until(
        Duration::from_secs(60),
        "the container reconnects with the rotated password",
        || scrape(addr).filter(|sc| up(sc) && connects(sc, &broker_name) > before),
    );
    assert_eq!(
        sc.value(
            "mqtt_sentinel_file_last_reload_successful",
            &[("field", "brokers[0].password_file")]
        ),
        Some(1.0)
    );

    // SIGTERM → exit 0 within the pod's grace period (podman stop sends SIGKILL after it).
    let grace = ex.pod()["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30)
        .to_string();
    ok(podman(&["stop", "--time", &grace, &name]));
    assert_eq!(
        ok(podman(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            &name
        ])),
        "0",
        "exit status after SIGTERM"
    );
    // Nothing written anywhere in the container's own filesystem. The runtime itself makes
    // the mount points of the volumes and tmpfs (and so changes their parents) in the
    // container's top layer before the root is made read-only: those, and only those, may
    // show.
    let targets = mount_targets(&args);
    assert!(!targets.is_empty(), "no mounts found in {args:?}");
    let diff = ok(podman(&["diff", &name]));
    let written: Vec<&str> = diff
        .lines()
        .filter(|l| {
            let path = l.split_once(' ').map_or(*l, |(_, p)| p).trim();
            !targets
                .iter()
                .any(|t| t == path || t.starts_with(&format!("{}/", path.trim_end_matches('/'))))
        })
        .collect();
    assert!(
        written.is_empty(),
        "podman diff beyond mount points: {written:?}\n{diff}"
    );
    drop(container);
}

/// Where `podman run` arguments mount volumes (`--volume host:target[:opts]`) and tmpfs
/// (`--tmpfs target[:opts]`).
fn mount_targets(args: &[&str]) -> Vec<String> {
    args.windows(2)
        .filter_map(|w| match w[0] {
            "--volume" => w[1].split(':').nth(1).map(str::to_owned),
            "--tmpfs" => w[1].split(':').next().map(str::to_owned),
            _ => None,
        })
        .collect()
}
