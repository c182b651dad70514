//! A directory laid out as the kubelet lays out a Secret volume, rotated as it rotates one.

use std::path::{Path, PathBuf};

/// A directory laid out as the kubelet lays out a Secret volume: `name -> ..data/name`,
/// `..data -> ..<version>`; [`SecretDir::rotate`] swaps `..data` atomically.
pub struct SecretDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl SecretDir {
    pub fn new(files: &[(&str, &[u8])]) -> SecretDir {
        let mut s = SecretDir {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        s.rotate(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), s.dir.path().join(name)).unwrap();
        }
        s
    }

    /// The volume's root (what a container mounts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new `..2026_11_30_<n>` directory with `files`, then `..data_tmp` renamed over
    /// `..data` (atomic), then the old directory removed, as the kubelet does.
    pub fn rotate(&mut self, files: &[(&str, &[u8])]) {
        let d = self.dir.path();
        let old = format!("..2026_11_30_{}", self.version);
        self.version += 1;
        let new = format!("..2026_11_30_{}", self.version);
        std::fs::create_dir(d.join(&new)).unwrap();
        for (name, content) in files {
            std::fs::write(d.join(&new).join(name), content).unwrap();
        }
        std::os::unix::fs::symlink(&new, d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        if self.version > 1 {
            std::fs::remove_dir_all(d.join(old)).unwrap();
        }
    }
}
