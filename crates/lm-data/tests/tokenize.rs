//! Tokenization of documents into a flat uint16 token file, with a tokenizer trained here on
//! the course's lab-1 corpus.

mod common;
use common::shared;

use std::path::PathBuf;
use std::sync::OnceLock;

use lm_basics::{Tokenizer, TrainOptions, train_bpe};
use lm_data::tokenize::{read_tokens, tokenize_files, tokenize_texts};

fn corpus_en() -> PathBuf {
    shared().join("cs336/a1/fixtures/corpus.en")
}

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let model = train_bpe(&corpus_en(), &TrainOptions::new(500, &["<|endoftext|>"])).unwrap();
        Tokenizer::from_model(&model).unwrap()
    })
}

/// Paragraph-sized documents from the corpus, plus non-ASCII and empty ones.
fn documents() -> Vec<String> {
    let text = std::fs::read_to_string(corpus_en()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut docs: Vec<String> = lines.chunks(40).take(50).map(|c| c.join("\n")).collect();
    docs.push("Ünïcödé — 日本語のテキスト and emoji 🦀".into());
    docs.push(String::new());
    docs.push("last one\n".into());
    docs
}

#[test]
fn token_file_decodes_to_documents_joined_by_the_separator() {
    let tok = tokenizer();
    let docs = documents();
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = dir.path().join(format!("doc{i:03}.txt"));
            std::fs::write(&p, d).unwrap();
            p
        })
        .collect();
    let out = dir.path().join("tokens.bin");
    let report = tokenize_files(tok, &inputs, &out).unwrap();

    let ids = read_tokens(&out).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 2 * ids.len() as u64);
    assert_eq!(report.tokens, ids.len() as u64);
    assert_eq!(report.documents, docs.len());
    let ids32: Vec<u32> = ids.iter().map(|&i| u32::from(i)).collect();
    assert_eq!(tok.decode(&ids32).unwrap(), docs.join("<|endoftext|>"));
    let eot = tok.token_id(b"<|endoftext|>").unwrap() as u16;
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), docs.len() - 1);
    // Same ids as encoding each document alone, in order.
    let mut expected = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            expected.push(eot);
        }
        expected.extend(tok.encode(d).iter().map(|&x| x as u16));
    }
    assert_eq!(ids, expected);
    assert_eq!(tokenize_texts(tok, &docs).unwrap(), expected);
    // Only the output is left in the directory (no temp file).
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        inputs.len() + 1
    );
}

#[test]
fn tokenizer_without_separator_is_an_error() {
    let model = train_bpe(&corpus_en(), &TrainOptions::new(300, &[])).unwrap();
    let tok = Tokenizer::from_model(&model).unwrap();
    let err = tokenize_texts(&tok, &["a", "b"]).unwrap_err().to_string();
    assert!(err.contains("<|endoftext|>"), "{err}");
}

#[test]
fn vocab_over_uint16_is_an_error_naming_its_size() {
    let mut vocab: Vec<(u32, Vec<u8>)> = (0..=255u8).map(|b| (u32::from(b), vec![b])).collect();
    vocab.push((70_000, b"<|endoftext|>".to_vec()));
    let tok = Tokenizer::new(vocab, &[], &["<|endoftext|>".to_string()]).unwrap();
    let err = tokenize_texts(&tok, &["a"]).unwrap_err().to_string();
    assert!(err.contains("70001") && err.contains("uint16"), "{err}");
}

#[test]
fn non_utf8_input_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"ok \xff\xfe not utf-8").unwrap();
    let out = dir.path().join("t.bin");
    let err = tokenize_files(tokenizer(), &[bad], &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.txt") && err.contains("UTF-8"), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
