//! `lm data mask-pii | gopher | dedup-exact | dedup-minhash | tokenize` end to end on the
//! course's fixtures.

mod common;

use std::path::{Path, PathBuf};

use common::shared;

use serde_json::Value;

fn a4() -> PathBuf {
    shared().join("cs336/a4/fixtures")
}

/// Runs `lm` with `stdin`; returns (success, stdout, stderr).
fn lm(args: &[&str], stdin: &str) -> (bool, String, String) {
    let out = common::lm_with_stdin(args, stdin.as_bytes());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn sorted_contents(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    all.sort();
    all
}

#[test]
fn mask_pii_each_kind() {
    let cases = [
        (
            "email",
            "mail pl@fakedomain.ai now",
            "mail |||EMAIL_ADDRESS||| now",
        ),
        (
            "phone",
            "call (283) 182 3829 today",
            "call |||PHONE_NUMBER||| today",
        ),
        ("ip", "server 192.0.2.146.", "server |||IP_ADDRESS|||."),
    ];
    for (kind, input, masked) in cases {
        let (ok, out, err) = lm(&["data", "mask-pii", "--kind", kind], input);
        assert!(ok, "{err}");
        let v = json(&out);
        assert_eq!(v["text"], masked);
        assert_eq!(v["count"], 1);
    }
    let (ok, _, err) = lm(&["data", "mask-pii", "--kind", "ssn"], "x");
    assert!(!ok && err.contains("ssn"), "{err}");
}

#[test]
fn gopher_reports_keep_statistics_and_failed_rules() {
    let good = "This should definitely be a valid input text and of high quality.\n".repeat(100);
    let (ok, out, err) = lm(&["data", "gopher"], &good);
    assert!(ok, "{err}");
    let v = json(&out);
    assert_eq!(v["keep"], true);
    assert_eq!(v["words"], 1200);
    assert_eq!(v["failed"], serde_json::json!([]));

    let (ok, out, _) = lm(&["data", "gopher"], "the be 1 2 3");
    assert!(ok);
    let v = json(&out);
    assert_eq!(v["keep"], false);
    assert_eq!(
        v["failed"],
        serde_json::json!(["word_count", "mean_word_length", "alphabetic_words"])
    );
}

#[test]
fn dedup_exact_on_the_course_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = a4().join("documents_with_line_duplicates");
    let (ok, stdout, err) = lm(
        &[
            "data",
            "dedup-exact",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(json(&stdout)["files"], 5);
    assert_eq!(
        sorted_contents(&out),
        sorted_contents(&a4().join("documents_line_deduplicated"))
    );
}

#[test]
fn dedup_minhash_on_the_course_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = a4().join("documents_with_fuzzy_duplicates");
    let (ok, stdout, err) = lm(
        &[
            "data",
            "dedup-minhash",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--num-hashes",
            "500",
            "--num-bands",
            "50",
            "--ngrams",
            "5",
            "--threshold",
            "0.8",
        ],
        "",
    );
    assert!(ok, "{err}");
    let v = json(&stdout);
    assert_eq!(
        (v["documents"].as_u64(), v["kept"].as_u64()),
        (Some(3), Some(2))
    );
    // Files are taken in name order, so the first MIT license by name is the one kept.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["pytorch_license.txt", "rails_mit_license.txt"]);

    let (ok, _, err) = lm(
        &[
            "data",
            "dedup-minhash",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--num-hashes",
            "100",
            "--num-bands",
            "7",
        ],
        "",
    );
    assert!(
        !ok && err.contains("num_hashes (100)") && err.contains("num_bands (7)"),
        "{err}"
    );
}

#[test]
fn tokenize_writes_uint16_ids_of_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    let corpus = shared().join("cs336/a1/fixtures/corpus.en");
    let (ok, _, err) = lm(
        &[
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
        ],
        "",
    );
    assert!(ok, "{err}");
    let docs = ["the first document .", "and the second one ."];
    let mut inputs = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let p = dir.path().join(format!("d{i}.txt"));
        std::fs::write(&p, d).unwrap();
        inputs.push(p.to_str().unwrap().to_string());
    }
    let out = dir.path().join("tokens.bin");
    let mut args = vec![
        "data",
        "tokenize",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--input",
    ];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap()]);
    let (ok, stdout, err) = lm(&args, "");
    assert!(ok, "{err}");
    let v = json(&stdout);
    assert_eq!(v["documents"], 2);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len() as u64, 2 * v["tokens"].as_u64().unwrap());
    // Decode with the same tokenizer through the library: the documents joined by the
    // separator come back.
    let t = lm_basics::tokenizer::files::from_dir(&tok).unwrap();
    let ids: Vec<u32> = bytes
        .chunks_exact(2)
        .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
        .collect();
    assert_eq!(t.decode(&ids).unwrap(), docs.join("<|endoftext|>"));
}
