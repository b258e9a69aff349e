//! What the lm-data integration tests share: where the shared data and the fetched assets are.
#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;

/// `$LM_ASSETS`, else `~/.cache/lm-assets` (the library's own rule).
pub fn assets() -> PathBuf {
    lm_data::fasttext::langid::assets_dir()
}

/// `$LM_SHARED`, else the `shared/` folder beside the checkout.
pub fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}
