//! Fingerprints the kernels' sources and the locked dependency versions (FNV-1a over every
//! file under `src/` and the workspace's Cargo.lock): CubeCL keys the kernels it caches on
//! disk by name and compile-time arguments only, so a kernel whose source changed would
//! otherwise be served from a cache its old source filled. lm-core keeps its kernel cache
//! under a directory named after this fingerprint.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut inputs: Vec<(String, PathBuf)> = Vec::new();
    let mut sources = Vec::new();
    files(&root.join("src"), &mut sources);
    for path in sources {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        inputs.push((name, path));
    }
    let lock = root.join("../../Cargo.lock");
    if lock.exists() {
        println!("cargo:rerun-if-changed={}", lock.display());
        inputs.push(("Cargo.lock".into(), lock));
    }
    println!("cargo:rerun-if-changed=src");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, path) in inputs {
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        for byte in name.bytes().chain(bytes) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=LM_KERNELS_FINGERPRINT={hash:016x}");
}
