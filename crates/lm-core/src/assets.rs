//! Where fetched data lives: `$LM_ASSETS`, else `~/.cache/lm-assets` (what
//! `shared/fetch-assets` fills: corpora, HTML, WARC, fastText and GGUF models, tokenizers).

use std::path::PathBuf;

pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LM_ASSETS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache/lm-assets")
}

/// `assets_dir()/rel` when that file exists (callers skip or say how to fetch it otherwise).
pub fn asset(rel: &str) -> Option<PathBuf> {
    let path = assets_dir().join(rel);
    path.is_file().then_some(path)
}
