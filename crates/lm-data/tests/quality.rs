//! The course's `test_classify_quality`: a quality model trained here (prose and HTML
//! paragraphs vs. HTML boilerplate, see `quality_training_data`) labels the Common Crawl
//! boilerplate fixture "cc" and the encyclopedia article "wiki".

mod common;
use common::shared;

use lm_data::fasttext::langid::assets_dir;
use lm_data::fasttext::quality::{
    TextClassifier, default_quality_training_data, train_quality_model,
};
use std::time::Instant;

#[test]
fn classify_quality() {
    let start = Instant::now();
    let data = default_quality_training_data(&assets_dir(), 1500)
        .expect("$LM_ASSETS corpora and html (run shared/fetch-assets)");
    let counts = |label: &str| data.lines().filter(|l| l.starts_with(label)).count();
    let (wiki, cc) = (counts("__label__wiki "), counts("__label__cc "));
    assert!(wiki >= 500 && cc >= 500, "wiki {wiki}, cc {cc}");
    let classifier = TextClassifier::quality(train_quality_model(&data, 1).unwrap());
    eprintln!(
        "quality model: {wiki} wiki / {cc} cc examples, trained in {:.1?}",
        start.elapsed()
    );

    let fixtures = shared().join("cs336/a4/fixtures");
    let low = std::fs::read_to_string(fixtures.join("low_quality_cc.txt")).unwrap();
    let (label, score) = classifier.classify(&low);
    eprintln!("low_quality_cc.txt → {label} {score}");
    assert_eq!(label, "cc");
    assert!(score > 0.0);

    let high = std::fs::read_to_string(fixtures.join("high_quality_wiki_reference.txt")).unwrap();
    let (label, score) = classifier.classify(&high);
    eprintln!("high_quality_wiki_reference.txt → {label} {score}");
    assert_eq!(label, "wiki");
    assert!(score > 0.0);
}
