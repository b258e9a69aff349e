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

/// A page of `$LM_ASSETS/html`: its file and its language (`lang` in `manifest.tsv`).
pub struct HtmlPage {
    pub path: PathBuf,
    pub lang: String,
}

/// The pages of `$LM_ASSETS/html`, or `None` (saying so) when the set was not fetched.
pub fn html_pages() -> Option<Vec<HtmlPage>> {
    let root = assets().join("html");
    let Ok(manifest) = std::fs::read_to_string(root.join("manifest.tsv")) else {
        eprintln!(
            "skipped: {} absent (run shared/fetch-assets --html)",
            root.display()
        );
        return None;
    };
    let pages = manifest
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            HtmlPage {
                path: root.join(fields[0]),
                lang: fields[3].to_string(),
            }
        })
        .collect();
    Some(pages)
}
