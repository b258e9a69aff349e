//! Supervised training: learns a separable task, is deterministic for a seed, and saves a
//! fastText `.bin` that our reader loads back with identical predictions.

use lm_data::fasttext::FastText;
use lm_data::fasttext::format::Loss;
use lm_data::fasttext::train::{TrainOptions, train};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const SPORT: &[&str] = &[
    "match", "goal", "team", "coach", "league", "score", "player", "referee", "season", "stadium",
];
const FOOD: &[&str] = &[
    "recipe", "oven", "flour", "sauce", "butter", "garlic", "simmer", "bake", "salt", "onion",
];
const COMMON: &[&str] = &[
    "the", "a", "was", "and", "of", "in", "very", "today", "we", "it",
];

/// `n` labeled lines: 6–12 words, half from the label's topic, half common words.
fn dataset(n: usize, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = String::new();
    for i in 0..n {
        let (label, topic) = if i % 2 == 0 {
            ("sport", SPORT)
        } else {
            ("food", FOOD)
        };
        out.push_str(&format!("__label__{label}"));
        for j in 0..rng.random_range(6..12) {
            let words = if j % 2 == 0 { topic } else { COMMON };
            out.push(' ');
            out.push_str(words[rng.random_range(0..words.len())]);
        }
        out.push('\n');
    }
    out
}

fn accuracy(model: &FastText, data: &str) -> f64 {
    let mut right = 0;
    let lines: Vec<&str> = data.lines().collect();
    for line in &lines {
        let (label, text) = line.split_once(' ').unwrap();
        right += (model.predict(text, 1, 0.0)[0].label == label) as usize;
    }
    right as f64 / lines.len() as f64
}

fn options(loss: Loss) -> TrainOptions {
    TrainOptions {
        dim: 8,
        epoch: 5,
        lr: 0.5,
        word_ngrams: 2,
        bucket: 1000,
        minn: 2,
        maxn: 4,
        loss,
        seed: 7,
        ..TrainOptions::default()
    }
}

fn fit(data: &str, o: &TrainOptions) -> FastText {
    train(data, o, Path::new("toy"), &mut |_, _| {}).unwrap()
}

#[test]
fn learns_a_separable_task_with_each_loss() {
    let (train_set, test_set) = (dataset(400, 1), dataset(200, 2));
    for loss in [Loss::Softmax, Loss::HierarchicalSoftmax, Loss::OneVsAll] {
        let model = fit(&train_set, &options(loss));
        let acc = accuracy(&model, &test_set);
        assert!(acc > 0.95, "{loss:?}: held-out accuracy {acc}");
        let top = model.predict("bake the garlic", 2, 0.0);
        assert_eq!(top[0].label, "__label__food", "{loss:?}");
    }
}

#[test]
fn training_is_deterministic_and_seeded() {
    let data = dataset(200, 3);
    let a = fit(&data, &options(Loss::Softmax)).to_bytes().unwrap();
    let b = fit(&data, &options(Loss::Softmax)).to_bytes().unwrap();
    assert_eq!(a, b);
    let other = TrainOptions {
        seed: 8,
        ..options(Loss::Softmax)
    };
    assert_ne!(a, fit(&data, &other).to_bytes().unwrap());
}

#[test]
fn saved_model_round_trips() {
    let data = dataset(200, 4);
    let dir = tempfile::tempdir().unwrap();
    for loss in [Loss::Softmax, Loss::HierarchicalSoftmax] {
        let model = fit(&data, &options(loss));
        let path = dir.path().join("toy.bin");
        model.save(&path).unwrap();
        let loaded = FastText::load(&path).unwrap();
        assert_eq!(loaded.args, model.args);
        assert_eq!(loaded.dict.nwords, model.dict.nwords);
        // Input rows: words + n-gram buckets; an unseen word still has character n-grams.
        assert_eq!(loaded.dict.input_rows(), model.dict.nwords + 1000);
        assert!(loaded.hidden("unseenword").is_some());
        for text in ["the coach and the team", "simmer the sauce", "zzz", ""] {
            assert_eq!(
                loaded.predict(text, 2, 0.0),
                model.predict(text, 2, 0.0),
                "{text:?}"
            );
        }
        assert_eq!(loaded.to_bytes().unwrap(), model.to_bytes().unwrap());
    }
}

#[test]
fn threshold_and_k_limit_predictions() {
    let model = fit(&dataset(200, 5), &options(Loss::Softmax));
    assert_eq!(model.predict("goal", 5, 0.0).len(), 2);
    assert!(model.predict("goal", 5, 0.999_999).is_empty());
    assert!(model.predict("goal", 0, 0.0).is_empty());
}

#[test]
fn unlabeled_input_is_an_error() {
    let err = train(
        "just text\nmore text\n",
        &options(Loss::Softmax),
        Path::new("in.txt"),
        &mut |_, _| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("in.txt") && err.contains("no labels"), "{err}");
}
