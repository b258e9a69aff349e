//! Tokenization of kept documents into one flat token file: little-endian `uint16` ids (the
//! format lab 1's training reads), documents joined by the `<|endoftext|>` token.
//!
//! Documents are encoded in parallel (rayon, one word cache per thread) in batches that keep
//! memory bounded, and written in input order through a temp file renamed at the end.
//!
//! A document is encoded like any text, so a literal `<|endoftext|>` inside it also becomes
//! the separator token (as lab 1's encoder does); strip it upstream if that matters.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lm_basics::Tokenizer;
use lm_basics::tokenizer::bpe::WordCache;
use lm_basics::tokenizer::encode_file::encode_parallel;
use lm_core::fsutil::AtomicFile;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{DataError, Result};

pub const DOCUMENT_SEPARATOR: &str = "<|endoftext|>";

/// Largest vocab whose ids fit `uint16`.
pub const MAX_VOCAB: usize = 1 << 16;

/// Input bytes read and encoded per batch.
const BATCH_BYTES: usize = 64 << 20;

/// A document longer than this is itself split across threads.
const LARGE_DOCUMENT_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenizeReport {
    pub documents: usize,
    pub bytes: u64,
    pub tokens: u64,
    pub seconds: f64,
}

/// The `<|endoftext|>` id, after checking that every id of the tokenizer fits `uint16`.
fn separator_id(tokenizer: &Tokenizer) -> Result<u16> {
    let vocab = tokenizer.vocab_size();
    if vocab > MAX_VOCAB {
        return Err(DataError::invalid(
            "tokenizer",
            format!("vocab size {vocab} does not fit uint16 token ids (at most {MAX_VOCAB})"),
        ));
    }
    if !tokenizer
        .special_tokens()
        .iter()
        .any(|t| t == DOCUMENT_SEPARATOR)
    {
        return Err(DataError::invalid(
            "tokenizer",
            format!("has no {DOCUMENT_SEPARATOR} special token to separate documents"),
        ));
    }
    let id = tokenizer
        .token_id(DOCUMENT_SEPARATOR.as_bytes())
        .expect("special tokens are in the vocab");
    to_u16(id, vocab)
}

fn to_u16(id: u32, vocab: usize) -> Result<u16> {
    u16::try_from(id).map_err(|_| {
        DataError::invalid(
            "tokenizer",
            format!("token id {id} (vocab size {vocab}) does not fit uint16"),
        )
    })
}

/// Encodes each document in parallel, order kept.
fn encode_documents<S: AsRef<str> + Sync>(tokenizer: &Tokenizer, docs: &[S]) -> Vec<Vec<u32>> {
    docs.par_iter()
        .map_init(WordCache::default, |cache, doc| {
            let doc = doc.as_ref();
            if doc.len() > LARGE_DOCUMENT_BYTES {
                return encode_parallel(tokenizer, doc);
            }
            let mut ids = Vec::with_capacity(doc.len() / 3);
            tokenizer.encode_into(doc, cache, &mut ids);
            ids
        })
        .collect()
}

/// Appends `ids` as `uint16` to `out`, after a separator unless `first`.
fn push_document(
    out: &mut Vec<u16>,
    ids: &[u32],
    separator: u16,
    first: bool,
    vocab: usize,
) -> Result<()> {
    if !first {
        out.push(separator);
    }
    out.reserve(ids.len());
    for &id in ids {
        out.push(to_u16(id, vocab)?);
    }
    Ok(())
}

/// The token ids of `docs` joined by `<|endoftext|>`, in memory.
pub fn tokenize_texts<S: AsRef<str> + Sync>(tokenizer: &Tokenizer, docs: &[S]) -> Result<Vec<u16>> {
    let separator = separator_id(tokenizer)?;
    let mut out = Vec::new();
    for (i, ids) in encode_documents(tokenizer, docs).iter().enumerate() {
        push_document(&mut out, ids, separator, i == 0, tokenizer.vocab_size())?;
    }
    Ok(out)
}

/// Encodes each input file as one document and writes the ids, joined by `<|endoftext|>`, to
/// `output` as little-endian `uint16`. Files must be UTF-8; an error names the file.
pub fn tokenize_files(
    tokenizer: &Tokenizer,
    inputs: &[PathBuf],
    output: &Path,
) -> Result<TokenizeReport> {
    let started = Instant::now();
    let separator = separator_id(tokenizer)?;
    let mut out = AtomicFile::create(output)?;
    let mut report = TokenizeReport::default();
    let mut ids16: Vec<u16> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for batch in batches(inputs)? {
        let texts = batch
            .par_iter()
            .map(|path| read_utf8(path))
            .collect::<Result<Vec<String>>>()?;
        for (text, ids) in texts.iter().zip(encode_documents(tokenizer, &texts)) {
            ids16.clear();
            let first = report.documents == 0;
            push_document(&mut ids16, &ids, separator, first, tokenizer.vocab_size())?;
            bytes.clear();
            bytes.extend(ids16.iter().flat_map(|id| id.to_le_bytes()));
            out.write_all(&bytes)
                .map_err(|e| DataError::io(output, e))?;
            report.documents += 1;
            report.bytes += text.len() as u64;
            report.tokens += ids16.len() as u64;
        }
    }
    out.commit()?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Groups of consecutive inputs of about [`BATCH_BYTES`] together.
fn batches(inputs: &[PathBuf]) -> Result<Vec<&[PathBuf]>> {
    let mut groups = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, path) in inputs.iter().enumerate() {
        let len = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        if size > 0 && size + len > BATCH_BYTES as u64 {
            groups.push(&inputs[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < inputs.len() {
        groups.push(&inputs[start..]);
    }
    Ok(groups)
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::bad_file(
            path,
            format!("not UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Reads a little-endian `uint16` token file.
pub fn read_tokens(path: &Path) -> Result<Vec<u16>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.len() % 2 != 0 {
        return Err(DataError::bad_file(
            path,
            format!("{} bytes is not a whole number of uint16 ids", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect())
}
