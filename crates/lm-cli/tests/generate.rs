//! `lm generate` end to end on the real SmolLM2-135M GGUF (skipped with a note when
//! `shared/fetch-assets --models` has not fetched it).

mod common;

use common::lm;
use serde_json::Value;

fn smollm2() -> Option<String> {
    let rel = "models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf";
    let path = lm_core::assets::asset(rel);
    if path.is_none() {
        eprintln!("skipped: $LM_ASSETS/{rel} absent (run shared/fetch-assets --models)");
    }
    path.map(|p| p.to_string_lossy().into_owned())
}

#[test]
fn greedy_continuation_streams_the_golden_text() {
    let Some(model) = smollm2() else { return };
    let (ok, out, err) = lm(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        "1, 2, 3, 4, 5, 6, 7, 8,",
        "--max-tokens",
        "16",
    ]);
    assert!(ok, "{err}");
    // The golden case gguf_forward/smollm2_135m_counting: 16 greedy tokens (digits are
    // single tokens) continue " 9, 10, 11, 12, ".
    assert!(out.starts_with(" 9, 10, 11, 12"), "{out:?}");
    assert!(err.contains("tokens/s"), "{err}");
}

#[test]
fn prompts_file_chat_and_jsonl_output() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(
        &prompts,
        concat!(
            r#"{"prompt": "The capital of France is", "max_tokens": 5}"#,
            "\n",
            r#"{"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 60}"#,
            "\n",
            r#"{"prompt": "Once upon a time", "temperature": 0.8, "seed": 7}"#,
            "\n",
            r#"{"prompt": "def add(a, b):", "max_tokens": 12}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let args = |batch: &str| {
        lm(&[
            "generate",
            "--model",
            &model,
            "--prompts",
            prompts.to_str().unwrap(),
            "--batch",
            batch,
            "--max-tokens",
            "20",
            "--logprobs",
            "--output",
            out.to_str().unwrap(),
        ])
    };
    let (ok, _, err) = args("2");
    assert!(ok, "{err}");
    let first = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["id"], i as u64);
        let tokens = row["tokens"].as_array().unwrap();
        let logprobs = row["logprobs"].as_array().unwrap();
        assert_eq!(tokens.len(), logprobs.len());
        assert!(logprobs.iter().all(|l| l.as_f64().unwrap() <= 0.0));
    }
    assert_eq!(
        rows[0]["tokens"].as_array().unwrap().len(),
        5,
        "per-line max_tokens"
    );
    assert!(
        rows[0]["text"].as_str().unwrap().contains("Paris"),
        "{}",
        rows[0]
    );
    // The chat request ends at the model's end of turn.
    assert_eq!(rows[1]["finish"]["reason"], "stop_token", "{}", rows[1]);
    // One row at a time gives the same completions (seeded sampling included); log-probs
    // agree to float rounding (batched shapes sum in another order).
    let (ok, _, err) = args("1");
    assert!(ok, "{err}");
    let again = std::fs::read_to_string(&out).unwrap();
    for (a, b) in rows.iter().zip(again.lines()) {
        let b: Value = serde_json::from_str(b).unwrap();
        assert_eq!((&a["tokens"], &a["text"]), (&b["tokens"], &b["text"]));
        let (la, lb) = (
            a["logprobs"].as_array().unwrap(),
            b["logprobs"].as_array().unwrap(),
        );
        for (x, y) in la.iter().zip(lb) {
            assert!(
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-3,
                "{x} vs {y}"
            );
        }
    }
}

#[test]
fn bad_inputs_are_named() {
    let (ok, _, err) = lm(&[
        "generate",
        "--model",
        "/nonexistent/model.gguf",
        "--prompt",
        "x",
    ]);
    assert!(!ok && err.contains("/nonexistent/model.gguf"), "{err}");
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("p.jsonl");
    std::fs::write(&prompts, "{\"promt\": \"typo\"}\n").unwrap();
    let (ok, _, err) = lm(&[
        "generate",
        "--model",
        &model,
        "--prompts",
        prompts.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("p.jsonl:1") && err.contains("promt"),
        "{err}"
    );
    let (ok, _, err) = lm(&[
        "generate", "--model", &model, "--prompt", "x", "--top-p", "1.5",
    ]);
    assert!(!ok && err.contains("top_p"), "{err}");
}
