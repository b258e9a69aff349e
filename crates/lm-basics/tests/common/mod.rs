//! Where the shared test data is.

use std::path::PathBuf;

pub fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

pub fn fixtures() -> PathBuf {
    shared().join("cs336/a1/fixtures")
}

/// `$LM_ASSETS/<rel>` when present (tests needing it skip otherwise).
#[allow(dead_code)]
pub fn asset(rel: &str) -> Option<PathBuf> {
    lm_core::assets::asset(rel)
}
