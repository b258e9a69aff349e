//! `lm tokenizer …`: train, encode, stats.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lm_basics::tokenizer::encode_file::{encode_file, encode_parallel};
use lm_basics::tokenizer::files;
use lm_basics::{Tokenizer, TrainOptions, train_bpe};

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE on a UTF-8 text file.
    Train {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        vocab_size: usize,
        /// A special token (repeatable), e.g. '<|endoftext|>'.
        #[arg(long = "special-token")]
        special_tokens: Vec<String>,
        /// Output directory: vocab.json, merges.txt, tokenizer.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode a text file into a flat token file (uint16 when the vocab fits, else uint32).
    Encode {
        #[command(flatten)]
        tokenizer: TokenizerSource,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compression (bytes per token) and encode throughput on a file.
    Stats {
        #[command(flatten)]
        tokenizer: TokenizerSource,
        #[arg(long)]
        input: PathBuf,
    },
}

/// Where a tokenizer comes from: a directory, or GPT-2 style files.
#[derive(Args)]
pub struct TokenizerSource {
    /// A directory written by `lm tokenizer train`.
    #[arg(long, conflicts_with_all = ["vocab", "merges"])]
    tokenizer: Option<PathBuf>,
    /// GPT-2 style vocab.json (with --merges).
    #[arg(long, requires = "merges")]
    vocab: Option<PathBuf>,
    #[arg(long, requires = "vocab")]
    merges: Option<PathBuf>,
    /// Special tokens for --vocab/--merges (repeatable).
    #[arg(long = "special-token")]
    special_tokens: Vec<String>,
}

impl TokenizerSource {
    fn load(&self) -> anyhow::Result<Tokenizer> {
        Ok(match (&self.tokenizer, &self.vocab, &self.merges) {
            (Some(dir), _, _) => files::from_dir(dir)?,
            (None, Some(v), Some(m)) => files::from_files(v, m, &self.special_tokens)?,
            _ => bail!("give --tokenizer DIR, or --vocab FILE --merges FILE"),
        })
    }
}

fn file_len(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len())
}

pub fn run(cmd: TokenizerCommand) -> anyhow::Result<()> {
    match cmd {
        TokenizerCommand::Train {
            input,
            vocab_size,
            special_tokens,
            out,
        } => {
            let mut opts = TrainOptions::new(vocab_size, &[]);
            opts.special_tokens = special_tokens;
            opts.progress = true;
            let started = Instant::now();
            let model = train_bpe(&input, &opts)?;
            let secs = started.elapsed().as_secs_f64();
            files::save(&model, &out)?;
            println!(
                "trained {} merges ({} tokens) on {} ({:.1} MB) in {secs:.2} s; wrote {}",
                model.merges.len(),
                model.vocab.len(),
                input.display(),
                file_len(&input)? as f64 / 1e6,
                out.display()
            );
            if model.vocab.len() < vocab_size {
                println!("note: the corpus ran out of pairs before vocab size {vocab_size}");
            }
        }
        TokenizerCommand::Encode {
            tokenizer,
            input,
            out,
        } => {
            let tok = tokenizer.load()?;
            let stats = encode_file(&tok, &input, &out, true)?;
            println!(
                "{} tokens ({}) from {:.1} MB: {:.2} bytes/token, {:.1} MB/s on {} threads; wrote {}",
                stats.tokens,
                stats.dtype.name(),
                stats.bytes as f64 / 1e6,
                stats.bytes_per_token(),
                stats.mb_per_second(),
                rayon::current_num_threads(),
                out.display()
            );
        }
        TokenizerCommand::Stats { tokenizer, input } => {
            let tok = tokenizer.load()?;
            let bytes = std::fs::read(&input).with_context(|| format!("{}", input.display()))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not valid UTF-8 at byte {}",
                    input.display(),
                    e.utf8_error().valid_up_to()
                )
            })?;
            let t0 = Instant::now();
            let single = tok.encode(&text);
            let t_single = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let multi = encode_parallel(&tok, &text);
            let t_multi = t1.elapsed().as_secs_f64();
            anyhow::ensure!(
                single == multi,
                "parallel and serial encodings differ (a bug)"
            );
            let mb = text.len() as f64 / 1e6;
            println!(
                "file: {} ({mb:.2} MB), vocab size {}",
                input.display(),
                tok.vocab_size()
            );
            println!(
                "tokens: {} ({:.3} bytes/token)",
                single.len(),
                text.len() as f64 / single.len().max(1) as f64
            );
            println!(
                "encode: 1 thread {:.1} MB/s, {} threads {:.1} MB/s",
                mb / t_single,
                rayon::current_num_threads(),
                mb / t_multi
            );
        }
    }
    Ok(())
}
