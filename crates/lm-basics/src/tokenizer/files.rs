//! Tokenizer files: GPT-2 style `vocab.json` + `merges.txt` (byte-to-unicode encoded, one
//! merge per line, as the course's fixtures) and a Hugging Face `tokenizer.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::bpe::Tokenizer;
use super::bytes_unicode;
use super::train::BpeModel;
use crate::error::{BasicsError, Result};

pub const VOCAB_FILE: &str = "vocab.json";
pub const MERGES_FILE: &str = "merges.txt";
pub const HF_FILE: &str = "tokenizer.json";

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    lm_core::fsutil::write_atomic(path, bytes).map_err(|e| BasicsError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| BasicsError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| BasicsError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to() as u64,
    })
}

/// The Hugging Face `tokenizer.json` of a model: ByteLevel pre-tokenizer (its regex is GPT-2's
/// pattern; no prefix space), BPE with our vocab and merges, special tokens as added tokens.
pub fn hf_tokenizer_json(model: &BpeModel) -> Value {
    let vocab: serde_json::Map<String, Value> = model
        .vocab
        .iter()
        .enumerate()
        // Specials stay in the model vocab too: HF renumbers added tokens it cannot find there.
        .map(|(i, b)| (bytes_unicode::encode(b), json!(i)))
        .collect();
    let merges: Vec<Value> = model
        .merges
        .iter()
        .map(|(l, r)| json!([bytes_unicode::encode(l), bytes_unicode::encode(r)]))
        .collect();
    let added: Vec<Value> = model
        .special_tokens
        .iter()
        .map(|s| {
            let id = model
                .vocab
                .iter()
                .position(|b| b == s.as_bytes())
                .expect("specials are in the vocab");
            json!({"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges
        }
    })
}

/// Writes `vocab.json`, `merges.txt` and `tokenizer.json` into `dir` (created), atomically.
pub fn save(model: &BpeModel, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BasicsError::io(dir, e))?;
    let vocab: BTreeMap<String, usize> = model
        .vocab
        .iter()
        .enumerate()
        .map(|(i, b)| (bytes_unicode::encode(b), i))
        .collect();
    let vocab_json = serde_json::to_string_pretty(&vocab).expect("serialisable");
    write_atomic(&dir.join(VOCAB_FILE), vocab_json.as_bytes())?;
    let mut merges = String::new();
    for (l, r) in &model.merges {
        merges.push_str(&bytes_unicode::encode(l));
        merges.push(' ');
        merges.push_str(&bytes_unicode::encode(r));
        merges.push('\n');
    }
    write_atomic(&dir.join(MERGES_FILE), merges.as_bytes())?;
    let hf = serde_json::to_string(&hf_tokenizer_json(model)).expect("serialisable");
    write_atomic(&dir.join(HF_FILE), hf.as_bytes())
}

/// Reads a GPT-2 style `vocab.json` (token → id) into `(id, bytes)` pairs.
pub fn read_vocab(path: &Path) -> Result<Vec<(u32, Vec<u8>)>> {
    let text = read_text(path)?;
    let map: BTreeMap<String, Value> =
        serde_json::from_str(&text).map_err(|e| BasicsError::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a JSON object of token → id: {e}"),
        })?;
    map.into_iter()
        .map(|(token, id)| {
            let bad = |reason: String| BasicsError::BadFile {
                path: path.to_path_buf(),
                reason,
            };
            let id = id
                .as_u64()
                .filter(|&i| i <= u32::MAX as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "token {token:?}: id {id} is not a non-negative integer"
                    ))
                })?;
            // Special tokens such as <|endoftext|> are stored verbatim, not byte-encoded.
            let bytes = bytes_unicode::decode(&token).unwrap_or_else(|| token.as_bytes().to_vec());
            Ok((id as u32, bytes))
        })
        .collect()
}

/// Reads `merges.txt`: one `left right` pair per line (a `#version` header is skipped).
pub fn read_merges(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let text = read_text(path)?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || (i == 0 && line.starts_with("#version")) {
            continue;
        }
        let bad = |reason: &str| BasicsError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason: reason.into(),
        };
        let (l, r) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `left right`"))?;
        if r.contains(' ') {
            return Err(bad("more than two tokens"));
        }
        let l =
            bytes_unicode::decode(l).ok_or_else(|| bad("left token is not GPT-2 byte-encoded"))?;
        let r =
            bytes_unicode::decode(r).ok_or_else(|| bad("right token is not GPT-2 byte-encoded"))?;
        merges.push((l, r));
    }
    Ok(merges)
}

/// A tokenizer from GPT-2 style files.
pub fn from_files(vocab: &Path, merges: &Path, special_tokens: &[String]) -> Result<Tokenizer> {
    Tokenizer::new(read_vocab(vocab)?, &read_merges(merges)?, special_tokens)
}

/// A tokenizer from a directory written by [`save`]; special tokens come from the
/// `tokenizer.json` added tokens when present.
pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
    let hf = dir.join(HF_FILE);
    let specials = if hf.is_file() {
        let v: Value =
            serde_json::from_str(&read_text(&hf)?).map_err(|e| BasicsError::BadFile {
                path: hf.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        v["added_tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["content"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    from_files(&dir.join(VOCAB_FILE), &dir.join(MERGES_FILE), &specials)
}
