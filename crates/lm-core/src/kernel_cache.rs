//! Where CubeCL keeps compiled kernels and autotune results between runs.
//!
//! CubeCL compiles every kernel at first use (NVRTC on CUDA) and autotunes matmuls; on a
//! fresh H200 that took minutes before the first training step. By default CubeCL does not
//! keep compiled kernels and keeps autotune results under the nearest `target/`, so an
//! installed binary starts cold every time. [`init`] points both at one directory:
//! `$LM_KERNEL_CACHE`, else `~/.cache/lm/kernels`. A `cubecl.toml` in the working directory
//! still wins for any setting it makes.

use std::path::PathBuf;
use std::sync::OnceLock;

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The cache directory in use, set once per process before the first GPU call.
static CACHE_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// `$LM_KERNEL_CACHE`, else `$HOME/.cache/lm/kernels`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("LM_KERNEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lm/kernels")))
}

/// Configures CubeCL's caches; call before any GPU device is created. Idempotent; returns
/// the directory (None when no home directory is known and the variable is unset, which
/// leaves CubeCL's defaults).
pub fn init() -> Option<PathBuf> {
    CACHE_DIR
        .get_or_init(|| {
            let dir = default_dir()?;
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
