//! Conformance of our fastText reader/predictor with the official bindings on lid.176.ftz
//! (quantized, hierarchical softmax): same top-5 labels, probabilities within 2e-5.

mod common;
use common::shared;

use lm_data::fasttext::FastText;
use std::path::PathBuf;

fn lid_path() -> PathBuf {
    shared().join("assets/fasttext/lid.176.ftz")
}

#[test]
fn lid176_header_and_dictionary() {
    let model = FastText::load(&lid_path()).unwrap();
    assert!(model.is_quantized());
    assert_eq!(model.args.dim, 16);
    assert_eq!(model.dict.nlabels, 176);
    assert_eq!(model.dict.nwords, 7235);
    assert_eq!(
        model.args.loss,
        lm_data::fasttext::format::Loss::HierarchicalSoftmax
    );
}

#[test]
fn lid176_matches_official_predictions() {
    let model = FastText::load(&lid_path()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared().join("assets/fasttext/lid.176.predictions.json")).unwrap(),
    )
    .unwrap();
    let cases = json["predictions"].as_array().unwrap();
    assert!(cases.len() >= 25);
    let mut worst = 0.0f64;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = case["top5"].as_array().unwrap();
        let got = model.predict(text, expected.len(), 0.0);
        assert_eq!(got.len(), expected.len(), "{text:?}");
        for (g, e) in got.iter().zip(expected) {
            let label = e[0].as_str().unwrap();
            let prob = e[1].as_f64().unwrap();
            assert_eq!(
                g.label, label,
                "{text:?}: got {got:?}, expected {expected:?}"
            );
            let diff = (g.prob as f64 - prob).abs();
            worst = worst.max(diff);
            assert!(diff < 2e-5, "{text:?} {label}: {} vs {prob}", g.prob);
        }
    }
    eprintln!("largest probability difference: {worst:e}");
}

#[test]
fn truncated_model_is_an_error_naming_the_file() {
    let bytes = std::fs::read(lid_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [0usize, 3, 40, 1000, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path().join(format!("cut{cut}.ftz"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = FastText::load(&path)
            .err()
            .expect("truncated model must fail");
        assert!(err.to_string().contains(&format!("cut{cut}.ftz")), "{err}");
    }
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    let path = dir.path().join("badmagic.ftz");
    std::fs::write(&path, &bad).unwrap();
    let err = FastText::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("badmagic.ftz") && err.contains("magic"),
        "{err}"
    );
}

#[test]
fn corrupted_bytes_give_errors_or_working_models_never_panics() {
    let bytes = std::fs::read(lid_path()).unwrap();
    let path = std::path::Path::new("corrupt.ftz");
    // The header, args and dictionary sizes, then a spread over the whole file.
    let positions = (0..80).chain((80..bytes.len()).step_by(bytes.len() / 150));
    for pos in positions {
        for flip in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[pos] ^= flip;
            match FastText::from_bytes(&bad, path) {
                Ok(model) => {
                    model.predict("hello world, bonjour le monde", 3, 0.0);
                }
                Err(e) => assert!(e.to_string().contains("corrupt.ftz"), "{e}"),
            }
        }
    }
}
