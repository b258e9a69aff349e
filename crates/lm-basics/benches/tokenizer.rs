//! `cargo bench -p lm-basics`: GPT-2 encoding, ours vs tiktoken-rs, and BPE training on the
//! course's corpus.en (same input, same run). The cross-peer table is `cargo xtask bench tokenizer`.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lm_basics::tokenizer::files::from_files;
use lm_basics::{TrainOptions, train_bpe};

fn fixtures() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("cs336/a1/fixtures")
}

fn encode(c: &mut Criterion) {
    let f = fixtures();
    let ours = from_files(
        &f.join("gpt2_vocab.json"),
        &f.join("gpt2_merges.txt"),
        &["<|endoftext|>".into()],
    )
    .unwrap();
    let tik = tiktoken_rs::r50k_base_singleton();
    let text = std::fs::read_to_string(f.join("corpus.en")).unwrap();
    assert_eq!(ours.encode(&text), tik.encode_with_special_tokens(&text));
    let mut g = c.benchmark_group("encode_gpt2_corpus_en");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("ours", |b| b.iter(|| ours.encode(&text)));
    g.bench_function("tiktoken-rs", |b| {
        b.iter(|| tik.encode_with_special_tokens(&text))
    });
    g.finish();
}

fn train(c: &mut Criterion) {
    let input = fixtures().join("corpus.en");
    let opts = TrainOptions::new(500, &["<|endoftext|>"]);
    c.bench_function("train_bpe_corpus_en_500", |b| {
        b.iter(|| train_bpe(&input, &opts).unwrap())
    });
}

criterion_group!(benches, encode, train);
criterion_main!(benches);
