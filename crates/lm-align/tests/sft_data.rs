//! Ports of the course's `test_tokenize_prompt_and_output` (snapshot ids; with the Qwen2.5
//! tokenizer when `$LM_ASSETS` has it), `test_packed_sft_dataset` and `test_iterate_batches`
//! (Llama 3 `tokenizer.json` from `$LM_ASSETS`; skipped when absent).

use std::path::PathBuf;

use lm_align::sft_data::{
    ALPACA_TEMPLATE, PackedExample, PromptOutputBatch, batch_from_ids, iterate_batches,
    pack_sft_examples, read_sft_jsonl, tokenize_prompt_and_output,
};
use tokenizers::Tokenizer;

fn a5_dir() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("cs336/a5")
}

use lm_core::assets::asset;

fn tokenizer(rel: &str) -> Option<Tokenizer> {
    let Some(path) = asset(rel) else {
        eprintln!("skipped: $LM_ASSETS/{rel} absent (run shared/fetch-assets)");
        return None;
    };
    Some(Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// (shape, values) of one array of the course snapshot.
fn snapshot<T: npyz::Deserialize>(key: &str) -> (Vec<usize>, Vec<T>) {
    let path = a5_dir().join("snapshots/test_tokenize_prompt_and_output.npz");
    let mut archive = npyz::npz::NpzArchive::open(&path).unwrap();
    let arr = archive.by_name(key).unwrap().unwrap();
    let shape = arr.shape().iter().map(|&d| d as usize).collect();
    (shape, arr.into_vec().unwrap())
}

fn rows<T: Copy>(shape: &[usize], v: &[T]) -> Vec<Vec<T>> {
    v.chunks(shape[1]).map(<[T]>::to_vec).collect()
}

const STRINGS: [&str; 3] = ["Hello, world!", "This is a test.", "This is another test."];
const QWEN_PAD: u32 = 151643;

fn expected_tokenized() -> PromptOutputBatch {
    let (s, ids) = snapshot::<i64>("input_ids");
    let (_, labels) = snapshot::<i64>("labels");
    let (_, mask) = snapshot::<bool>("response_mask");
    let to_u32 = |v: Vec<i64>| v.into_iter().map(|x| x as u32).collect::<Vec<_>>();
    PromptOutputBatch {
        input_ids: rows(&s, &to_u32(ids)),
        labels: rows(&s, &to_u32(labels)),
        response_mask: rows(&s, &mask),
    }
}

#[test]
fn tokenize_prompt_and_output_logic_matches_snapshot() {
    // Prompts and outputs are the same strings, so each row's token ids are recoverable from
    // the snapshot: the unpadded sequence is prompt ++ output with equal halves.
    let expected = expected_tokenized();
    let (ids, labels) = (&expected.input_ids, &expected.labels);
    let mut tokens = Vec::new();
    for (i, l) in ids.iter().zip(labels) {
        let mut seq = vec![i[0]];
        seq.extend(l.iter().copied().take_while(|&t| t != QWEN_PAD));
        assert_eq!(seq.len() % 2, 0);
        tokens.push(seq[..seq.len() / 2].to_vec());
    }
    assert_eq!(batch_from_ids(&tokens, &tokens, QWEN_PAD), expected);
}

#[test]
fn test_tokenize_prompt_and_output() {
    let Some(tok) = tokenizer("tokenizers/qwen2.5/tokenizer.json") else {
        return;
    };
    let got = tokenize_prompt_and_output(&STRINGS, &STRINGS, &tok, QWEN_PAD).unwrap();
    assert_eq!(got, expected_tokenized());
}

#[test]
fn tokenize_prompt_and_output_rejects_mismatched_lengths() {
    let Some(tok) = tokenizer("tokenizers/qwen2.5/tokenizer.json") else {
        return;
    };
    let err = tokenize_prompt_and_output(&STRINGS, &STRINGS[..2], &tok, QWEN_PAD).unwrap_err();
    assert!(err.contains("3 prompts but 2 outputs"), "{err}");
}

const LLAMA3_BOS: u32 = 128000;
const LLAMA3_EOS: u32 = 128001;

fn packed(shuffle: Option<u64>) -> Option<Vec<PackedExample>> {
    let tok = tokenizer("tokenizers/llama3/tokenizer.json")?;
    let examples = read_sft_jsonl(&a5_dir().join("fixtures/sft_sample.jsonl")).unwrap();
    Some(
        pack_sft_examples(
            &examples,
            &tok,
            ALPACA_TEMPLATE,
            LLAMA3_BOS,
            LLAMA3_EOS,
            32,
            shuffle,
        )
        .unwrap(),
    )
}

#[test]
fn test_packed_sft_dataset() {
    let Some(got) = packed(None) else { return };
    let path = a5_dir().join("fixtures/tokenized_sft_sample.json");
    let expected: Vec<PackedExample> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(expected.len(), 75);
    assert_eq!(got.len(), 75);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "packed example {i}");
    }
    let shuffled = packed(Some(0)).unwrap();
    assert_eq!(shuffled.len(), 75);
    assert_ne!(shuffled, got, "shuffling left the examples in order");
}

#[test]
fn test_iterate_batches() {
    let Some(data) = packed(Some(0)) else { return };
    let batches: Vec<_> = iterate_batches(&data, 8, Some(1)).collect();
    assert_eq!(batches.len(), 75usize.div_ceil(8));
    for (k, (ids, labels)) in batches.iter().enumerate() {
        let rows = if k + 1 < batches.len() { 8 } else { 75 - 8 * 9 };
        assert_eq!(ids.len(), rows);
        assert_eq!(labels.len(), rows);
        assert!(ids.iter().chain(labels).all(|r| r.len() == 32));
    }
    // Every example appears exactly once.
    let mut seen: Vec<_> = batches.iter().flat_map(|(ids, _)| ids.clone()).collect();
    let mut all: Vec<_> = data.iter().map(|e| e.input_ids.clone()).collect();
    seen.sort();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn batch_from_ids_by_hand() {
    // Prompt [1, 2] + output [3] and prompt [4] + output [5, 6, 7]; pad 0, max length 4.
    let got = batch_from_ids(&[vec![1, 2], vec![4]], &[vec![3], vec![5, 6, 7]], 0);
    assert_eq!(got.input_ids, vec![vec![1, 2, 3], vec![4, 5, 6]]);
    assert_eq!(got.labels, vec![vec![2, 3, 0], vec![5, 6, 7]]);
    assert_eq!(
        got.response_mask,
        vec![vec![false, true, false], vec![true, true, true]]
    );
    let empty = batch_from_ids(&[], &[], 0);
    assert!(empty.input_ids.is_empty() && empty.labels.is_empty());
}

#[test]
fn sft_input_errors_name_the_problem() {
    let dir = std::env::temp_dir().join(format!("lm-align-sft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": 1}\n",
    )
    .unwrap();
    let err = read_sft_jsonl(&bad).unwrap_err();
    assert!(err.contains("bad.jsonl:2"), "{err}");
    let err = read_sft_jsonl(&dir.join("missing.jsonl")).unwrap_err();
    assert!(
        err.contains("missing.jsonl") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let Some(tok) = tokenizer("tokenizers/llama3/tokenizer.json") else {
        return;
    };
    let err =
        pack_sft_examples(&[], &tok, ALPACA_TEMPLATE, LLAMA3_BOS, LLAMA3_EOS, 0, None).unwrap_err();
    assert!(err.contains("seq_len"), "{err}");
}
