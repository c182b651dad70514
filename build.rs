//! Records the git revision for `mqtt_sentinel_build_info{revision}`. Builds outside a git
//! checkout (a source tarball, the Dockerfile's COPY) can pass MQTT_SENTINEL_REVISION.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MQTT_SENTINEL_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    let rev = std::env::var("MQTT_SENTINEL_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=MQTT_SENTINEL_REVISION={}",
        rev.filter(|r| !r.is_empty())
            .unwrap_or_else(|| "unknown".into())
    );
}
