//! Throw-away PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate for mTLS. EC P-256 keys: fast to generate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// A CA plus `server.{crt,key}` and `client.{crt,key}`; `other-ca.crt` is an unrelated CA.
pub fn generate() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=mqtt-sentinel test {ca}"),
            ],
        );
    }
    leaf(
        d,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    leaf(
        d,
        "client",
        "mqtt-sentinel-test-client",
        "extendedKeyUsage=clientAuth\n",
    );
    Pki { dir }
}
