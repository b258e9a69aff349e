//! `lm data mask-pii | gopher | dedup-exact | dedup-minhash | tokenize`: the filtering half of
//! the lab-4 pipeline, one library function each (JSON out, so scripts can read it).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use lm_data::dedup::{exact_line_dedup, minhash_dedup};
use lm_data::{gopher, pii, tokenize};
use serde_json::json;

#[derive(Subcommand)]
pub enum FilterCommand {
    /// Mask one kind of PII in stdin; prints {"text": masked, "count": n}.
    MaskPii {
        #[arg(long, value_enum)]
        kind: PiiKind,
    },
    /// Gopher quality rules on stdin; prints {"keep": bool, statistics…, "failed": [rules]}.
    Gopher,
    /// Remove every line occurring more than once across the files of IN_DIR; outputs keep
    /// their file names in OUT_DIR.
    DedupExact { in_dir: PathBuf, out_dir: PathBuf },
    /// MinHash + LSH near-duplicate removal: copies the first file (by name) of each cluster
    /// of IN_DIR to OUT_DIR.
    DedupMinhash {
        in_dir: PathBuf,
        out_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        num_hashes: usize,
        #[arg(long, default_value_t = 10)]
        num_bands: usize,
        /// Word n-gram length of the shingles.
        #[arg(long, default_value_t = 5)]
        ngrams: usize,
        /// Jaccard similarity at or above which two documents are duplicates.
        #[arg(long, default_value_t = 0.8)]
        threshold: f64,
    },
    /// Encode files (one document each) into a uint16 token file, documents joined by
    /// <|endoftext|>.
    Tokenize {
        /// A tokenizer directory written by `lm tokenizer train`.
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PiiKind {
    Email,
    Phone,
    Ip,
}

pub fn run(cmd: FilterCommand) -> Result<()> {
    match cmd {
        FilterCommand::MaskPii { kind } => {
            let text = read_stdin()?;
            let (text, count) = match kind {
                PiiKind::Email => pii::mask_emails(&text),
                PiiKind::Phone => pii::mask_phone_numbers(&text),
                PiiKind::Ip => pii::mask_ips(&text),
            };
            println!("{}", json!({"text": text, "count": count}));
        }
        FilterCommand::Gopher => {
            let r = gopher::gopher_report(&read_stdin()?);
            let failed: Vec<&str> = r.failed.iter().map(|rule| rule.name()).collect();
            println!(
                "{}",
                json!({
                    "keep": r.keep(),
                    "words": r.words,
                    "mean_word_length": r.mean_word_length,
                    "lines": r.lines,
                    "ellipsis_line_fraction": r.ellipsis_line_fraction,
                    "alphabetic_word_fraction": r.alphabetic_word_fraction,
                    "failed": failed,
                })
            );
        }
        FilterCommand::DedupExact { in_dir, out_dir } => {
            let report = exact_line_dedup(&files_in(&in_dir)?, &out_dir)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        FilterCommand::DedupMinhash {
            in_dir,
            out_dir,
            num_hashes,
            num_bands,
            ngrams,
            threshold,
        } => {
            let inputs = files_in(&in_dir)?;
            let report =
                minhash_dedup(&inputs, num_hashes, num_bands, ngrams, threshold, &out_dir)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        FilterCommand::Tokenize {
            tokenizer,
            input,
            out,
        } => {
            let tok = lm_basics::tokenizer::files::from_dir(&tokenizer)
                .with_context(|| format!("loading the tokenizer in {}", tokenizer.display()))?;
            let report = tokenize::tokenize_files(&tok, &input, &out)?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

fn read_stdin() -> Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading stdin")?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "stdin is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The regular files directly in `dir` (hidden ones skipped), sorted by name: that order is
/// the "input order" MinHash dedup keeps the first of.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading directory {}", dir.display()))?
            .path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
