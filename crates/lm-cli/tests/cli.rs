//! The `lm` binary end to end: train a tokenizer, encode a file, stats, and error exits.

mod common;

use std::path::PathBuf;

use common::lm;

fn fixtures() -> PathBuf {
    common::shared().join("cs336/a1/fixtures")
}

#[test]
fn tokenizer_train_encode_stats() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    let corpus = fixtures().join("corpus.en");
    let (ok, out, err) = lm(&[
        "tokenizer",
        "train",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "500",
        "--special-token",
        "<|endoftext|>",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("243 merges"), "{out}");
    for f in ["vocab.json", "merges.txt", "tokenizer.json"] {
        assert!(tok.join(f).is_file(), "{f}");
    }
    let bin = dir.path().join("corpus.bin");
    let (ok, out, err) = lm(&[
        "tokenizer",
        "encode",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--input",
        corpus.to_str().unwrap(),
        "--out",
        bin.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let tokens: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(
        std::fs::metadata(&bin).unwrap().len(),
        2 * tokens,
        "uint16 ids"
    );
    let (ok, out, err) = lm(&[
        "tokenizer",
        "stats",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--input",
        corpus.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("bytes/token") && out.contains("MB/s"), "{out}");
}

#[test]
fn bad_arguments_exit_nonzero_with_a_clear_message() {
    let (ok, _, err) = lm(&[
        "tokenizer",
        "train",
        "--input",
        "/no/such/file.txt",
        "--vocab-size",
        "300",
        "--out",
        "/tmp/x",
    ]);
    assert!(!ok);
    assert!(err.contains("/no/such/file.txt"), "{err}");
    let corpus = fixtures().join("corpus.en");
    let (ok, _, err) = lm(&[
        "tokenizer",
        "train",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "256",
        "--special-token",
        "<|endoftext|>",
        "--out",
        "/tmp/x",
    ]);
    assert!(!ok);
    assert!(err.contains("vocab_size"), "{err}");
    let (ok, _, err) = lm(&[
        "tokenizer",
        "encode",
        "--input",
        corpus.to_str().unwrap(),
        "--out",
        "/tmp/x.bin",
    ]);
    assert!(!ok);
    assert!(err.contains("--tokenizer"), "{err}");
}

#[test]
fn summary_prints_the_handout_model() {
    let (ok, out, err) = lm(&["summary"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("layers.3.ffn.w2.weight") && out.contains("total parameters"),
        "{out}"
    );
}
