//! The course's `test_classify_quality`: a quality model trained here (prose and HTML
//! paragraphs vs. HTML boilerplate, see `quality_training_data`) labels the Common Crawl
//! boilerplate fixture "cc" and the encyclopedia article "wiki".

use lm_data::fasttext::langid::assets_dir;
use lm_data::fasttext::quality::{TextClassifier, quality_training_data, train_quality_model};
use std::path::PathBuf;
use std::time::Instant;

fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The English HTML pages of `$LM_ASSETS/html` (Debian handbook and installation guide).
fn english_pages() -> Vec<String> {
    let html = assets_dir().join("html");
    let mut pages = Vec::new();
    for dir in ["debian-handbook/en-US", "installation-guide/en"] {
        let mut paths: Vec<_> = std::fs::read_dir(html.join(dir))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run shared/fetch-assets)",
                    html.join(dir).display()
                )
            })
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            pages.push(String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned());
        }
    }
    pages
}

#[test]
fn classify_quality() {
    let start = Instant::now();
    let prose = std::fs::read_to_string(assets_dir().join("corpora/english-prose-train.txt"))
        .expect("english-prose-train.txt (run shared/fetch-assets --corpora)");
    let data = quality_training_data(&prose, &english_pages(), 1500);
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
