//! `cargo xtask lab1`: the whole of lab 1 on embedded data, no downloads — generate a story
//! corpus, train a BPE tokenizer, encode, train a small Transformer on the CPU, evaluate,
//! and sample. Everything lands in one run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use lm_basics::data::TokenFile;
use lm_basics::tokenizer::encode_file::encode_file;
use lm_basics::tokenizer::files;
use lm_basics::train::checkpoint::load_model;
use lm_basics::train::{TrainConfig, train};
use lm_basics::{TrainOptions, stories, train_bpe};
use lm_core::generate::{Engine, Request, SamplingParams};

pub struct Lab1Options {
    pub run_dir: Option<PathBuf>,
    pub seed: u64,
    pub corpus_mb: f64,
    pub steps: u64,
}

/// Unigram entropy of a token file in nats per token: the loss of a model that ignores context.
pub fn unigram_entropy(tokens: &TokenFile) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for i in 0..tokens.len() {
        *counts.entry(tokens.get(i)).or_insert(0u64) += 1;
    }
    let n = tokens.len() as f64;
    counts
        .values()
        .map(|&c| c as f64 / n)
        .map(|p| -p * p.ln())
        .sum()
}

fn config(run: &Path, vocab: usize, steps: u64, seed: u64) -> anyhow::Result<TrainConfig> {
    let text = format!(
        r#"[model]
vocab_size = {vocab}
context_length = 128
d_model = 128
num_layers = 4
num_heads = 4
d_ff = 384
rope_theta = 10000.0

[data]
train = "{train}"
valid = "{valid}"

[optimizer]
lr = 3e-3
min_lr = 3e-4
betas = [0.9, 0.95]
eps = 1e-8
weight_decay = 0.1
warmup_iters = {warmup}
grad_clip = 1.0

[train]
steps = {steps}
batch_size = 16
eval_interval = {eval}
eval_batches = 8
checkpoint_interval = {eval}
seed = {seed}
backend = "ndarray"
"#,
        train = run.join("train.bin").display(),
        valid = run.join("valid.bin").display(),
        warmup = (steps / 20).max(1),
        eval = (steps / 4).max(1),
    );
    Ok(TrainConfig::from_toml(&text, &[])?)
}

pub fn run(opts: Lab1Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let run = opts.run_dir.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("runs/lab1-{t}"))
    });
    std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    println!("lab 1 in {}", run.display());

    // 1. Corpus: stories from two seeds, so validation text is unseen.
    let bytes = (opts.corpus_mb * 1e6) as usize;
    let write = |name: &str, text: &str| {
        std::fs::write(run.join(name), text).with_context(|| name.to_string())
    };
    write("train.txt", &stories::corpus(opts.seed, bytes))?;
    write(
        "valid.txt",
        &stories::corpus(opts.seed + 1_000_003, bytes / 10),
    )?;
    println!(
        "[1/5] corpus: {:.1} MB of generated stories (seed {})",
        opts.corpus_mb, opts.seed
    );

    // 2. Tokenizer.
    let t = Instant::now();
    let bpe = train_bpe(
        &run.join("train.txt"),
        &TrainOptions::new(1024, &["<|endoftext|>"]),
    )?;
    files::save(&bpe, &run.join("tokenizer"))?;
    println!(
        "[2/5] tokenizer: {} merges in {:.2} s",
        bpe.merges.len(),
        t.elapsed().as_secs_f64()
    );

    // 3. Encode.
    let tok = files::from_dir(&run.join("tokenizer"))?;
    let stats = encode_file(&tok, &run.join("train.txt"), &run.join("train.bin"), false)?;
    encode_file(&tok, &run.join("valid.txt"), &run.join("valid.bin"), false)?;
    println!(
        "[3/5] encoded: {} training tokens, {:.2} bytes/token",
        stats.tokens,
        stats.bytes_per_token()
    );

    // 4. Train.
    let cfg = config(&run, tok.vocab_size(), opts.steps, opts.seed)?;
    let train_run = run.join("train");
    let out = train::<lm_core::backends::NdArrayAutodiff>(
        &cfg,
        &train_run,
        false,
        &Default::default(),
        true,
    )?;
    let entropy = unigram_entropy(&TokenFile::open(&cfg.data.train, cfg.token_dtype()?)?);
    let eval = out.eval_loss.context("the run evaluates at its end")?;
    println!(
        "[4/5] trained {} steps in {:.0} s ({:.0} tokens/s): validation loss {eval:.3} nats/token \
         vs unigram entropy {entropy:.3} ({:.1}× lower; perplexity {:.2})",
        out.steps,
        out.seconds,
        out.tokens_per_second,
        entropy / eval,
        eval.exp()
    );

    // 5. Sample.
    let device = Default::default();
    let (model, _) = load_model::<lm_core::backends::NdArray>(
        &train_run.join("checkpoint.safetensors"),
        &device,
    )?;
    // The generation engine (as `lm generate --checkpoint`): prompt i samples from its own
    // stream seeded `seed + i`; `<|endoftext|>` ends a story.
    let eos: Vec<u32> = tok.token_id(b"<|endoftext|>").into_iter().collect();
    let prompts = ["Once upon a time,", "One day, Tom", "Mia was a"];
    let requests: Vec<Request> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Request {
            id: i as u64,
            prompt: tok.encode(p),
            params: SamplingParams {
                temperature: 0.7,
                top_p: 0.9,
                max_tokens: 80,
                stop_token_ids: eos.clone(),
                seed: Some(opts.seed + i as u64),
                ..SamplingParams::default()
            },
        })
        .collect();
    let mut engine = Engine::new(&model, prompts.len(), model.context_length)?;
    let completions = engine.generate(requests, |_| {})?;
    let mut samples = String::new();
    for (prompt, c) in prompts.iter().zip(completions) {
        let story: Vec<u32> = c.tokens.into_iter().filter(|t| !eos.contains(t)).collect();
        samples.push_str(&format!("{prompt}{}\n\n", tok.decode(&story)?));
    }
    write("samples.txt", &samples)?;
    let summary = serde_json::json!({
        "validation_loss": eval, "unigram_entropy": entropy, "steps": out.steps,
        "tokens_per_second": out.tokens_per_second, "train_seconds": out.seconds,
        "total_seconds": started.elapsed().as_secs_f64(), "seed": opts.seed,
    });
    write("summary.json", &serde_json::to_string_pretty(&summary)?)?;
    println!("[5/5] samples (also in samples.txt):\n\n{samples}");
    println!(
        "done in {:.0} s; loss curve {}",
        started.elapsed().as_secs_f64(),
        train_run.join("loss_curve.png").display()
    );
    anyhow::ensure!(
        eval < 0.5 * entropy,
        "validation loss {eval:.3} is not well below the unigram entropy {entropy:.3}"
    );
    Ok(())
}
