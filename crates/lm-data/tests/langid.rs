//! The course's language-ID tests (`test_langid.py`) on lid.176.ftz, plus error handling.

mod common;
use common::shared;

use lm_data::fasttext::langid::LanguageIdentifier;

fn identifier() -> LanguageIdentifier {
    LanguageIdentifier::load(&shared().join("assets/fasttext/lid.176.ftz")).unwrap()
}

#[test]
fn identify_language_english() {
    let text =
        std::fs::read_to_string(shared().join("cs336/a4/fixtures/moby_extracted.txt")).unwrap();
    let (lang, score) = identifier().identify(&text);
    assert_eq!(lang, "en");
    assert!(score > 0.0);
}

#[test]
fn identify_language_chinese_simplified() {
    let (lang, score) = identifier().identify("欢迎来到我们的网站");
    assert_eq!(lang, "zh");
    assert!(score > 0.0);
}

#[test]
fn top_k_is_sorted_and_stripped() {
    let top = identifier().top_k("Die Katze schläft auf dem warmen Sofa im Wohnzimmer.", 3);
    assert_eq!(top.len(), 3);
    assert_eq!(top[0].0, "de");
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!(top.iter().all(|(l, _)| !l.starts_with("__label__")));
}

#[test]
fn empty_text_has_no_language() {
    // Only the end-of-line token remains, which is a known word: still a prediction.
    let (lang, _) = identifier().identify("");
    assert!(!lang.is_empty());
}

#[test]
fn missing_or_corrupt_model_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/lid.176.bin");
    let err = LanguageIdentifier::load(&missing)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope/lid.176.bin"), "{err}");
    let bytes = std::fs::read(shared().join("assets/fasttext/lid.176.ftz")).unwrap();
    let truncated = dir.path().join("truncated.ftz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = LanguageIdentifier::load(&truncated)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("truncated.ftz") && err.contains("ends early"),
        "{err}"
    );
}
