//! Throw-away PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate for mTLS. EC P-256 keys: fast to generate.

use super::mosquitto::ListenerTls;
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
    /// A server certificate `name.{crt,key}` for 127.0.0.1 and localhost, signed by the CA,
    /// that expired on 2020-01-02 (`openssl ca` takes explicit dates; `x509 -days` does not).
    pub fn expired_server_cert(&self, name: &str) -> ListenerTls {
        let d = self.dir.path();
        let csr = format!("{name}.csr");
        new_key_request(d, name, "localhost", &["-out", &csr]);
        std::fs::write(
            d.join("expired-ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = expired-index.txt\nnew_certs_dir = .\nserial = expired-serial\ndefault_md = sha256\npolicy = any\nx509_extensions = ext\n[any]\ncommonName = supplied\n[ext]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        )
        .expect("ca config");
        std::fs::write(d.join("expired-index.txt"), "").expect("index");
        std::fs::write(d.join("expired-serial"), "1000\n").expect("serial");
        let crt = format!("{name}.crt");
        let args: Vec<String> = [
            "ca",
            "-batch",
            "-config",
            "expired-ca.cnf",
            "-cert",
            "ca.crt",
            "-keyfile",
        ]
        .into_iter()
        .chain(["ca.key", "-in", &csr, "-out", &crt, "-startdate"])
        .chain(["20200101000000Z", "-enddate", "20200102000000Z"])
        .map(String::from)
        .collect();
        openssl(d, &args);
        ListenerTls {
            ca: self.ca(),
            cert: self.path(&crt),
            key: self.path(&format!("{name}.key")),
            require_client_cert: false,
        }
    }

    /// One more server certificate `name.{crt,key}` signed by the CA, valid for `san`
    /// (`DNS:elsewhere.test`): a certificate not issued for the host being dialled.
    pub fn server_cert(&self, name: &str, san: &str) -> ListenerTls {
        leaf(
            self.dir.path(),
            name,
            name,
            &format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
        );
        ListenerTls {
            ca: self.ca(),
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
            require_client_cert: false,
        }
    }
}

fn openssl(dir: &Path, args: &[String]) {
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

/// `openssl req` with a new unencrypted EC P-256 key in `name.key`, then `extra`.
fn new_key_request(dir: &Path, name: &str, subject: &str, extra: &[&str]) {
    let mut args: Vec<String> = ["req", "-newkey", "ec", "-pkeyopt"]
        .into_iter()
        .chain(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .map(String::from)
        .collect();
    args.push(format!("{name}.key"));
    args.extend(["-subj".into(), format!("/CN={subject}")]);
    args.extend(extra.iter().map(|s| s.to_string()));
    openssl(dir, &args);
}

/// A certificate `name.crt` signed by `ca.crt` with the given X.509 extensions.
fn leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    let csr = format!("{name}.csr");
    new_key_request(dir, name, cn, &["-out", &csr]);
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("ext");
    let crt = format!("{name}.crt");
    let args = [
        "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
    ]
    .into_iter()
    .chain([
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
        "-extfile",
        &ext_file,
    ])
    .map(String::from)
    .collect::<Vec<_>>();
    openssl(dir, &args);
}

/// A CA plus `server.{crt,key}` and `client.{crt,key}`; `other-ca.crt` is an unrelated CA.
pub fn generate() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        let crt = format!("{ca}.crt");
        new_key_request(
            d,
            ca,
            &format!("mqtt-sentinel test {ca}"),
            &["-x509", "-days", "2", "-out", &crt],
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
