//! Where CubeCL keeps compiled kernels and autotune results between runs.
//!
//! CubeCL compiles every kernel at first use (NVRTC on CUDA) and autotunes matmuls; on a
//! fresh H200 that took minutes before the first training step. By default CubeCL does not
//! keep compiled kernels and keeps autotune results under the nearest `target/`, so an
//! installed binary starts cold every time. [`init`] points both at one directory:
//! `$LM_KERNEL_CACHE`, else `~/.cache/lm/kernels`, in a subdirectory named after the kernels'
//! source fingerprint ([`lm_kernels::SOURCE_FINGERPRINT`]): CubeCL finds a cached kernel by
//! its name and compile-time arguments only, so after a kernel's source changed it served
//! the old build (session 15: the head-dim-80 attention fix ran as the broken kernel cached
//! the session before). Other fingerprints' subdirectories are removed once idle for an
//! hour. A `cubecl.toml` in the working directory still wins for any setting it makes.

use std::path::PathBuf;
use std::sync::OnceLock;

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The cache directory in use, set once per process before the first GPU call.
static CACHE_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Prefix of the per-fingerprint subdirectories.
const VERSION_PREFIX: &str = "kernels-";

/// `$LM_KERNEL_CACHE`, else `$HOME/.cache/lm/kernels`: the root that holds one subdirectory
/// per kernel-source fingerprint.
fn default_root() -> Option<PathBuf> {
    std::env::var_os("LM_KERNEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lm/kernels")))
}

/// This build's cache directory under [`default_root`].
pub fn default_dir() -> Option<PathBuf> {
    default_root().map(|root| root.join(versioned_name()))
}

fn versioned_name() -> String {
    format!("{VERSION_PREFIX}{}", lm_kernels::SOURCE_FINGERPRINT)
}

/// Other builds' subdirectories untouched for this long are removed.
const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the subdirectories other builds left under `root` (only ours, by prefix, and only
/// those unchanged for [`PRUNE_AFTER`], so a run of another build sharing the root keeps
/// its own), so the cache does not grow with every kernel change. Failures are ignored: it
/// is a cache.
fn prune_other_versions(root: &std::path::Path) {
    let current = versioned_name();
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let idle = |entry: &std::fs::DirEntry| {
        entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= PRUNE_AFTER)
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(VERSION_PREFIX)
            && name != current
            && entry.path().is_dir()
            && idle(&entry)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Configures CubeCL's caches; call before any GPU device is created. Idempotent; returns
/// the directory (None when no home directory is known and the variable is unset, which
/// leaves CubeCL's defaults).
pub fn init() -> Option<PathBuf> {
    CACHE_DIR
        .get_or_init(|| {
            let dir = default_dir()?;
            if let Some(root) = dir.parent() {
                prune_other_versions(root);
            }
            let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
            if config.compilation.cache.is_none() {
                config.compilation.cache = Some(CacheConfig::File(dir.clone()));
            }
            if matches!(config.autotune.cache, CacheConfig::Target) {
                config.autotune.cache = CacheConfig::File(dir.clone());
            }
            CubeClRuntimeConfig::set(config);
            Some(dir)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_fingerprints_are_pruned_when_idle_and_foreign_entries_kept() {
        let root = tempfile::tempdir().unwrap();
        let current = root.path().join(versioned_name());
        let stale = root
            .path()
            .join(format!("{VERSION_PREFIX}0000000000000000"));
        let recent = root
            .path()
            .join(format!("{VERSION_PREFIX}1111111111111111"));
        let foreign = root.path().join("ptx");
        for dir in [&current, &stale, &recent, &foreign] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - 2 * PRUNE_AFTER;
        for dir in [&current, &stale, &foreign] {
            std::fs::File::open(dir)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        prune_other_versions(root.path());
        assert!(current.is_dir() && foreign.is_dir() && recent.is_dir());
        assert!(!stale.exists());
        assert_eq!(lm_kernels::SOURCE_FINGERPRINT.len(), 16);
    }
}
