//! Tokenizer benchmarks: BPE training vs Hugging Face `tokenizers`, encoding vs `tiktoken-rs`
//! and `tokenizers` on the GPT-2 vocabulary. Training runs each trainer in its own child
//! process so peak RSS is per trainer.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use lm_basics::tokenizer::files::from_files;
use lm_basics::{Tokenizer, TrainOptions, train_bpe};
use rayon::prelude::*;

use super::{best_of, peak_rss_mib};

const EOT: &str = "<|endoftext|>";

/// Which trainer a child process runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Trainer {
    Ours,
    Hf,
}

/// Child-process entry: trains once and prints `seconds peak_rss_mib vocab_len`.
pub fn train_worker(trainer: Trainer, input: &Path, vocab_size: usize) -> anyhow::Result<()> {
    let (secs, len) = match trainer {
        Trainer::Ours => best_of(1, || {
            train_bpe(input, &TrainOptions::new(vocab_size, &[EOT]))
                .map(|m| m.vocab.len())
                .map_err(anyhow::Error::from)
        }),
        Trainer::Hf => best_of(1, || train_hf(input, vocab_size)),
    };
    println!("{secs} {} {}", peak_rss_mib(), len?);
    Ok(())
}

fn train_hf(input: &Path, vocab_size: usize) -> anyhow::Result<usize> {
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, TokenizerBuilder};
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok = TokenizerBuilder::<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevel,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
    .with_decoder(Some(ByteLevel::default()))
    .build()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tok.train_from_files(&mut trainer, vec![input.to_string_lossy().into_owned()])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(tok.get_vocab_size(true))
}

fn run_train_child(
    trainer: Trainer,
    input: &Path,
    vocab: usize,
    threads: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "bench-train-worker",
            "--trainer",
            &format!("{trainer:?}").to_lowercase(),
            "--vocab-size",
            &vocab.to_string(),
        ])
        .arg("--input")
        .arg(input)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("TOKENIZERS_PARALLELISM", "true")
        .output()?;
    if !out.status.success() {
        bail!(
            "{trainer:?} trainer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8(out.stdout)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Ok((f[0].parse()?, f[1].parse()?, f[2].parse()?))
}

/// Documents of about 64 KiB cut at line ends: every encoder gets the same list.
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + (64 << 10)).min(text.len());
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        end = text[end..]
            .find('\n')
            .map(|i| end + i + 1)
            .unwrap_or(text.len());
        docs.push(&text[start..end]);
        start = end;
    }
    docs
}

struct EncodeRow {
    name: &'static str,
    single: f64,
    double: f64,
}

fn encode_bench(
    corpus: &Path,
    ours: &Tokenizer,
    hf: &tokenizers::Tokenizer,
    reps: usize,
) -> anyhow::Result<Vec<EncodeRow>> {
    let text = std::fs::read_to_string(corpus).with_context(|| format!("{}", corpus.display()))?;
    let docs = documents(&text);
    let mb = text.len() as f64 / 1e6;
    let tik = tiktoken_rs::r50k_base_singleton();
    // Correctness first: ours equals tiktoken's GPT-2 ids on every document, and HF's.
    for d in &docs {
        anyhow::ensure!(
            ours.encode(d) == tik.encode_with_special_tokens(d),
            "ours and tiktoken disagree on {}",
            corpus.display()
        );
    }
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("thread pool")
    };
    let (p1, p2) = (pool(1), pool(2));
    let time = |pool: &rayon::ThreadPool, f: &(dyn Fn(&str) -> usize + Sync)| -> f64 {
        let (secs, n) = best_of(reps, || {
            pool.install(|| docs.par_iter().map(|d| f(d)).sum::<usize>())
        });
        assert!(n > 0);
        mb / secs
    };
    let ours_f = |d: &str| ours.encode(d).len();
    // All three treat <|endoftext|> as one special token.
    let tik_f = |d: &str| tik.encode_with_special_tokens(d).len();
    let hf_f = |d: &str| hf.encode_fast(d, false).expect("hf encode").len();
    Ok(vec![
        EncodeRow {
            name: "ours (lm-basics)",
            single: time(&p1, &ours_f),
            double: time(&p2, &ours_f),
        },
        EncodeRow {
            name: "tiktoken-rs 0.12.1",
            single: time(&p1, &tik_f),
            double: time(&p2, &tik_f),
        },
        EncodeRow {
            name: "HF tokenizers 0.23.2",
            single: time(&p1, &hf_f),
            double: time(&p2, &hf_f),
        },
    ])
}

/// Runs every tokenizer benchmark and prints markdown tables.
pub fn run(shared: &Path, assets: &Path, reps: usize) -> anyhow::Result<()> {
    let fixtures = shared.join("cs336/a1/fixtures");
    let mut corpora = vec![(fixtures.join("corpus.en"), 500usize)];
    let prose = assets.join("corpora/english-prose-train.txt");
    if prose.is_file() {
        corpora.push((prose, 10_000));
    } else {
        eprintln!(
            "note: $LM_ASSETS/corpora/english-prose-train.txt absent; run shared/fetch-assets --corpora"
        );
    }

    println!("## BPE training (2 threads, special token {EOT}; each trainer in its own process)\n");
    println!(
        "| corpus | vocab | ours s | HF s | time ratio ours/HF | ours peak RSS MiB | HF peak RSS MiB | RSS ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (corpus, vocab) in &corpora {
        let best = |t| -> anyhow::Result<(f64, f64)> {
            let mut runs = Vec::new();
            for _ in 0..reps {
                runs.push(run_train_child(t, corpus, *vocab, 2)?);
            }
            let secs = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
            let rss = runs.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            Ok((secs, rss))
        };
        let (os, or) = best(Trainer::Ours)?;
        let (hs, hr) = best(Trainer::Hf)?;
        let name = corpus.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "| {name} | {vocab} | {os:.3} | {hs:.3} | {:.2} | {or:.0} | {hr:.0} | {:.2} |",
            os / hs,
            or / hr
        );
    }

    let ours = from_files(
        &fixtures.join("gpt2_vocab.json"),
        &fixtures.join("gpt2_merges.txt"),
        &[EOT.to_string()],
    )?;
    let hf_path = assets.join("tokenizers/gpt2/tokenizer.json");
    if !hf_path.is_file() {
        bail!(
            "$LM_ASSETS/tokenizers/gpt2/tokenizer.json absent; run shared/fetch-assets --tokenizers"
        );
    }
    let hf = tokenizers::Tokenizer::from_file(&hf_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", hf_path.display()))?;
    println!("\n## Encoding throughput, GPT-2 vocabulary (MB/s; same ~64 KiB documents for all)\n");
    println!(
        "| corpus | encoder | 1 thread | 2 threads | ours/it, 1 thread | ours/it, 2 threads |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (corpus, _) in &corpora {
        let rows = encode_bench(corpus, &ours, &hf, reps)?;
        let name = corpus.file_name().unwrap_or_default().to_string_lossy();
        for r in &rows {
            println!(
                "| {name} | {} | {:.1} | {:.1} | {:.2} | {:.2} |",
                r.name,
                r.single,
                r.double,
                rows[0].single / r.single,
                rows[0].double / r.double
            );
        }
    }
    Ok(())
}
