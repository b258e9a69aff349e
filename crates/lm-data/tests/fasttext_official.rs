//! Models written by the official fastText (0.9.2) — dense softmax / hierarchical softmax /
//! one-vs-all `.bin`, and quantized `.ftz` with and without norm quantization — load in our
//! reader and predict what the official binding predicted (fixtures/data/fasttext/).

use lm_data::fasttext::FastText;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data/fasttext")
}

#[test]
fn official_toy_models_match_the_binding() {
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("official-toy-predictions.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let outputs = json["out"].as_object().unwrap();
    assert_eq!(outputs.len(), 5);
    for (file, expected) in outputs {
        let model = FastText::load(&fixtures().join(file)).unwrap();
        assert_eq!(model.is_quantized(), file.ends_with(".ftz"), "{file}");
        for (text, want) in texts.iter().zip(expected.as_array().unwrap()) {
            let got = model.predict(text, 2, 0.0);
            let want = want.as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{file} {text:?}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.label, w[0].as_str().unwrap(), "{file} {text:?}: {got:?}");
                let p = w[1].as_f64().unwrap();
                assert!(
                    (g.prob as f64 - p).abs() < 2e-5,
                    "{file} {text:?}: {} vs {p}",
                    g.prob
                );
            }
        }
    }
}
