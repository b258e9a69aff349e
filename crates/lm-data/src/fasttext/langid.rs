//! Language identification with a fastText language-ID model (lid.176): the course's
//! `identify_language`, returning the language code without `__label__` and its probability.

use super::{FastText, strip_label};
use crate::{DataError, Result};
use std::path::{Path, PathBuf};

pub use lm_core::assets::assets_dir;

/// The language-ID model to use by default: `lid.176.bin` under `$LM_ASSETS/fasttext` when
/// present (the full model), else the quantized `lid.176.ftz`.
pub fn default_model_path() -> PathBuf {
    let dir = assets_dir().join("fasttext");
    let full = dir.join("lid.176.bin");
    if full.exists() {
        full
    } else {
        dir.join("lid.176.ftz")
    }
}

pub struct LanguageIdentifier {
    model: FastText,
}

impl LanguageIdentifier {
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(DataError::bad_file(
                path,
                "language-ID model not found (run shared/fetch-assets --fasttext, or pass its path)",
            ));
        }
        Ok(Self {
            model: FastText::load(path)?,
        })
    }

    pub fn model(&self) -> &FastText {
        &self.model
    }

    /// The `k` most likely languages, best first, for a whole document: newlines become
    /// spaces (fastText predicts one line at a time).
    pub fn top_k(&self, text: &str, k: usize) -> Vec<(String, f32)> {
        let line = one_line(text);
        self.model
            .predict(&line, k, 0.0)
            .into_iter()
            .map(|p| (strip_label(&p.label).to_string(), p.prob))
            .collect()
    }

    /// The course's `identify_language`: the most likely language and its probability
    /// (`("und", 0.0)` for text without any feature, e.g. empty).
    pub fn identify(&self, text: &str) -> (String, f32) {
        self.top_k(text, 1)
            .into_iter()
            .next()
            .unwrap_or_else(|| ("und".to_string(), 0.0))
    }
}

/// Joins a document's lines with spaces so it is predicted as one line.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        std::borrow::Cow::Owned(text.replace(['\n', '\r'], " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
