//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fixture folder `traces/tests/data`.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A fresh, empty scratch folder with copies of the fixture kernel files in `model_kernels/`;
/// removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("orion-traces-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("model_kernels")).unwrap();
        for entry in std::fs::read_dir(data().join("model_kernels")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join("model_kernels").join(entry.file_name())).unwrap();
        }
        std::fs::create_dir_all(dir.join("traces")).unwrap();
        for entry in std::fs::read_dir(data().join("traces")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join("traces").join(entry.file_name())).unwrap();
        }
        Scratch { dir }
    }

    /// Writes `text` to `name` inside the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
