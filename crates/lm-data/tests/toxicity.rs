//! The course's `test_toxicity.py`, run with Dolma's Jigsaw fastText models when they are in
//! `$LM_ASSETS/fasttext/` (they are not fetched by shared/fetch-assets: only on model hubs);
//! otherwise each test prints why it is skipped. The comments are written in the spirit of
//! the course's (Jigsaw-style), not copied from it. The loading path itself is always tested
//! with a model trained here.

use lm_data::fasttext::quality::{TextClassifier, nsfw_model_path, toxic_model_path};
use lm_data::fasttext::train::{TrainOptions, train};
use std::path::Path;

fn dolma(path: &Path) -> Option<TextClassifier> {
    if path.exists() {
        Some(TextClassifier::load(path).unwrap())
    } else {
        eprintln!(
            "SKIPPED: {} not found (Dolma's Jigsaw model; download it to run this test)",
            path.display()
        );
        None
    }
}

#[test]
fn classify_nsfw() {
    let Some(model) = dolma(&nsfw_model_path()) else {
        return;
    };
    let (label, score) = model
        .classify("SUCK IT YOU F*CKING EDITORS, go screw yourselves you dirty perverted c*nts");
    assert_eq!(label, "nsfw");
    assert!(score > 0.0);
    let (label, score) =
        model.classify("Umm, there is no actual article for this topic yet. - A helpful editor.");
    assert_eq!(label, "non-nsfw");
    assert!(score > 0.0);
}

#[test]
fn classify_toxic_speech() {
    let Some(model) = dolma(&toxic_model_path()) else {
        return;
    };
    let (label, score) = model.classify(
        "Why did that idiot revert my edit? What an arrogant moron, none of you fuckers have any \
         manners, you worthless pieces of trash.",
    );
    assert_eq!(label, "toxic");
    assert!(score > 0.0);
    let (label, score) = model.classify("Why should I get a warning for doing nothing?");
    assert_eq!(label, "non-toxic");
    assert!(score > 0.0);
}

#[test]
fn a_binary_classifier_loads_and_answers_without_prefix() {
    let mut data = String::new();
    for i in 0..60 {
        data.push_str(&format!("__label__toxic you stupid idiot moron {i}\n"));
        data.push_str(&format!(
            "__label__non-toxic thanks for the helpful edit {i}\n"
        ));
    }
    let options = TrainOptions {
        dim: 8,
        lr: 0.5,
        ..TrainOptions::default()
    };
    let model = train(&data, &options, Path::new("toy"), &mut |_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toxic.bin");
    model.save(&path).unwrap();
    let classifier = TextClassifier::load(&path).unwrap();
    let (label, score) = classifier.classify("what a stupid\nidiot");
    assert_eq!(label, "toxic");
    assert!(score > 0.5);
    assert_eq!(classifier.classify("thanks, helpful").0, "non-toxic");
    let err = TextClassifier::load(&dir.path().join("absent.bin"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("absent.bin"), "{err}");
}
