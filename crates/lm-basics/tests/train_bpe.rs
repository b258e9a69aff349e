//! Ports of the course's tests/test_train_bpe.py, plus our own checks of the trainer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use lm_basics::tokenizer::bytes_unicode;
use lm_basics::tokenizer::files::{from_dir, read_merges, read_vocab, save};
use lm_basics::{BasicsError, Tokenizer, TrainOptions, train_bpe};

fn corpus_en() -> std::path::PathBuf {
    common::fixtures().join("corpus.en")
}

#[test]
fn test_train_bpe_speed() {
    let start = Instant::now();
    train_bpe(&corpus_en(), &TrainOptions::new(500, &["<|endoftext|>"])).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(secs < 1.5, "training took {secs:.2} s (course limit 1.5 s)");
}

#[test]
fn test_train_bpe() {
    let model = train_bpe(&corpus_en(), &TrainOptions::new(500, &["<|endoftext|>"])).unwrap();
    let reference_merges =
        read_merges(&common::fixtures().join("train-bpe-reference-merges.txt")).unwrap();
    assert_eq!(model.merges, reference_merges);
    let reference_vocab =
        read_vocab(&common::fixtures().join("train-bpe-reference-vocab.json")).unwrap();
    let ids: BTreeSet<u32> = reference_vocab.iter().map(|(i, _)| *i).collect();
    let tokens: BTreeSet<Vec<u8>> = reference_vocab.into_iter().map(|(_, b)| b).collect();
    assert_eq!((0..model.vocab.len() as u32).collect::<BTreeSet<_>>(), ids);
    assert_eq!(model.vocab.iter().cloned().collect::<BTreeSet<_>>(), tokens);
}

/// The course's special-token test runs on a 5 MB TinyStories file (absent here): any text
/// with `<|endoftext|>` separators exercises the same rule.
#[test]
fn test_train_bpe_special_tokens() {
    let mut inputs = vec![common::fixtures().join("tinystories_sample.txt")];
    inputs.extend(common::asset("corpora/english-prose-valid.txt"));
    for input in inputs {
        let model = train_bpe(&input, &TrainOptions::new(1000, &["<|endoftext|>"])).unwrap();
        for token in &model.vocab {
            if token.as_slice() != b"<|endoftext|>" {
                assert!(
                    !token.windows(2).any(|w| w == b"<|"),
                    "{input:?}: {:?}",
                    String::from_utf8_lossy(token)
                );
            }
        }
    }
}

#[test]
fn saved_files_reload_and_hugging_face_agrees() {
    let model = train_bpe(&corpus_en(), &TrainOptions::new(500, &["<|endoftext|>"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save(&model, dir.path()).unwrap();
    let ours = Tokenizer::from_model(&model).unwrap();
    let reloaded = from_dir(dir.path()).unwrap();
    let hf = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(corpus_en()).unwrap();
    let sample = format!(
        "{}<|endoftext|>{}  \n\n x",
        &text[..20_000],
        &text[20_000..30_000]
    );
    let ids = ours.encode(&sample);
    assert_eq!(reloaded.encode(&sample), ids);
    let hf_ids = hf
        .encode(sample.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(hf_ids, ids);
    assert_eq!(ours.decode(&ids).unwrap(), sample);
    // Merges file in GPT-2 format: the vocab's byte strings decode back.
    let merges_txt = std::fs::read_to_string(dir.path().join("merges.txt")).unwrap();
    assert_eq!(merges_txt.lines().count(), model.merges.len());
    let vocab_json: BTreeMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("vocab.json")).unwrap())
            .unwrap();
    assert_eq!(
        bytes_unicode::decode(vocab_json.iter().find(|(_, i)| **i == 1).unwrap().0).unwrap(),
        vec![0u8]
    );
}

#[test]
fn ties_go_to_the_lexicographically_greatest_pair() {
    // "ab" and "cd" both occur twice; ("c","d") > ("a","b"), so it merges first.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    std::fs::write(&path, "ab cd ab cd").unwrap();
    let model = train_bpe(&path, &TrainOptions::new(258, &[])).unwrap();
    assert_eq!(model.merges[0], (b"c".to_vec(), b"d".to_vec()));
    assert_eq!(model.merges[1], (b"a".to_vec(), b"b".to_vec()));
}

#[test]
fn streaming_in_small_chunks_gives_the_same_model() {
    let whole = train_bpe(&corpus_en(), &TrainOptions::new(400, &["<|endoftext|>"])).unwrap();
    let mut small = TrainOptions::new(400, &["<|endoftext|>"]);
    small.chunk_bytes = 1024;
    assert_eq!(train_bpe(&corpus_en(), &small).unwrap(), whole);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = train_bpe(
        &dir.path().join("missing.txt"),
        &TrainOptions::new(300, &[]),
    )
    .unwrap_err();
    assert!(
        matches!(err, BasicsError::Io { .. }) && err.to_string().contains("missing.txt"),
        "{err}"
    );

    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let err = train_bpe(&latin1, &TrainOptions::new(300, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("latin1.txt") && err.contains("not valid UTF-8 at byte 3"),
        "{err}"
    );

    let err = train_bpe(&corpus_en(), &TrainOptions::new(256, &["<|endoftext|>"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vocab_size") && err.contains("257"), "{err}");

    let merges = dir.path().join("merges.txt");
    std::fs::write(&merges, "Ġ t\nonlyone\n").unwrap();
    let err = read_merges(&merges).unwrap_err().to_string();
    assert!(err.contains("merges.txt:2"), "{err}");
}
