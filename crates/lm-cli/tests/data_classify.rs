//! `lm data langid | classify | quality | train-classifier` end to end through the binary.

mod common;

use std::process::Output;

use common::shared;

fn lm(args: &[&str], stdin: &str) -> Output {
    common::lm_with_stdin(args, stdin.as_bytes())
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn lid() -> String {
    shared()
        .join("assets/fasttext/lid.176.ftz")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn langid_reads_stdin_and_prints_label_and_score() {
    let moby =
        std::fs::read_to_string(shared().join("cs336/a4/fixtures/moby_extracted.txt")).unwrap();
    let v = json(&lm(&["data", "langid", "--model", &lid()], &moby));
    assert_eq!(v["label"], "en");
    assert!(v["score"].as_f64().unwrap() > 0.0);
    let v = json(&lm(
        &["data", "langid", "--model", &lid(), "-k", "3"],
        "欢迎来到我们的网站",
    ));
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["label"], "zh");
}

#[test]
fn langid_lines_mode_gives_one_json_per_line() {
    let out = lm(
        &["data", "langid", "--model", &lid(), "--lines"],
        "The cat sleeps on the sofa.\nLe chat dort sur le canapé.\n",
    );
    assert!(out.status.success());
    let labels: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["label"].to_string())
        .collect();
    assert_eq!(labels, ["\"en\"", "\"fr\""]);
}

#[test]
fn missing_model_is_a_clear_error() {
    let out = lm(
        &["data", "langid", "--model", "/nonexistent/lid.bin"],
        "hello",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/lid.bin"), "{err}");
}

#[test]
fn train_classifier_then_classify() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.txt");
    let mut data = String::new();
    for i in 0..50 {
        data.push_str(&format!("__label__spam buy cheap pills now offer {i}\n"));
        data.push_str(&format!("__label__ham meeting notes for the project {i}\n"));
    }
    std::fs::write(&input, data).unwrap();
    let model = dir.path().join("sub/model.bin");
    let out = lm(
        &[
            "data",
            "train-classifier",
            "--input",
            input.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--dim",
            "8",
            "--lr",
            "0.5",
            "--word-ngrams",
            "2",
            "--bucket",
            "1000",
            "--seed",
            "3",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("epoch 5/5"));
    let v = json(&lm(
        &["data", "classify", "--model", model.to_str().unwrap()],
        "cheap pills",
    ));
    assert_eq!(v["label"], "spam");
    assert!(v["score"].as_f64().unwrap() > 0.5);
}

#[test]
fn train_quality_then_quality() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("quality.bin");
    let out = lm(
        &["data", "train-quality", "--out", model.to_str().unwrap()],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixtures = shared().join("cs336/a4/fixtures");
    for (file, want) in [
        ("low_quality_cc.txt", "cc"),
        ("high_quality_wiki_reference.txt", "wiki"),
    ] {
        let v = json(&lm(
            &[
                "data",
                "quality",
                "--model",
                model.to_str().unwrap(),
                "--input",
                fixtures.join(file).to_str().unwrap(),
            ],
            "",
        ));
        assert_eq!(v["label"], want, "{file}");
        assert!(v["score"].as_f64().unwrap() > 0.0);
    }
}
