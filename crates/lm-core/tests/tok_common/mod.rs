//! Shared helpers of the pretrained-tokenizer tests: where assets are, and loading.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lm_core::pretrained::gguf::GgufFile;
use lm_core::pretrained::tokenizer::TextTokenizer;
use serde_json::Value;

pub fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// `$LM_ASSETS/<rel>`, else `shared/assets/<rel>` (some small files are committed there).
pub fn asset(rel: &str) -> Option<PathBuf> {
    lm_core::assets::asset(rel).or_else(|| {
        let committed = shared().join("assets").join(rel);
        committed.is_file().then_some(committed)
    })
}

pub fn skip(what: &str) {
    eprintln!("skipped: {what} absent (run shared/fetch-assets --tokenizers / --models)");
}

pub fn gguf_tokenizer(path: &Path) -> TextTokenizer {
    let file = GgufFile::open(path).unwrap();
    TextTokenizer::from_gguf(&file).unwrap()
}

pub fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// (tokenizer dir, vocab GGUF file name).
pub const VOCABS: [(&str, &str); 3] = [
    ("qwen2.5", "ggml-vocab-qwen2.gguf"),
    ("llama3", "ggml-vocab-llama-bpe.gguf"),
    ("gpt2", "ggml-vocab-gpt-2.gguf"),
];
