//! `lm data langid | classify | quality | nsfw | toxic | train-classifier | train-quality`:
//! fastText-format language ID and classifiers (our own reader and trainer).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lm_data::fasttext::format::Loss;
use lm_data::fasttext::langid::{LanguageIdentifier, assets_dir, default_model_path, one_line};
use lm_data::fasttext::quality::{
    TextClassifier, default_quality_training_data, nsfw_model_path, quality_model_path,
    toxic_model_path, train_quality_model,
};
use lm_data::fasttext::train::{TrainOptions, train};
use lm_data::fasttext::{FastText, strip_label};
use rayon::prelude::*;
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ClassifyCommand {
    /// Language ID (lid.176): text on stdin (or --input) → {"label", "score"}, or the top-k
    /// list with -k > 1. Default model: $LM_ASSETS/fasttext/lid.176.bin, else lid.176.ftz.
    Langid {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        io: PredictIo,
    },
    /// Any supervised fastText model (.bin/.ftz): text → {"label", "score"} (top-k with -k).
    Classify {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        io: PredictIo,
    },
    /// Quality ("wiki" vs "cc"): text → {"label", "score"}. Default model:
    /// $LM_ASSETS/fasttext/quality.bin (made by `lm data train-quality`).
    Quality {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        io: PredictIo,
    },
    /// NSFW ("nsfw"/"non-nsfw") with Dolma's Jigsaw model:
    /// default $LM_ASSETS/fasttext/dolma_fasttext_nsfw_jigsaw_model.bin.
    Nsfw {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        io: PredictIo,
    },
    /// Toxic speech ("toxic"/"non-toxic") with Dolma's Jigsaw hate-speech model:
    /// default $LM_ASSETS/fasttext/dolma_fasttext_hatespeech_jigsaw_model.bin.
    Toxic {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        io: PredictIo,
    },
    /// Trains a fastText supervised model on `__label__x text` lines; saves fastText .bin.
    TrainClassifier(TrainArgs),
    /// Trains the quality model from $LM_ASSETS (English prose and HTML paragraphs vs. HTML
    /// boilerplate) and saves it (default $LM_ASSETS/fasttext/quality.bin).
    TrainQuality {
        #[arg(long)]
        out: Option<PathBuf>,
        /// Examples per label (taken evenly from all that are available).
        #[arg(long, default_value_t = 1500)]
        max_per_label: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args)]
pub struct PredictIo {
    /// Read the text from this file instead of stdin.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Number of labels to return (a JSON list when > 1).
    #[arg(short, long, default_value_t = 1)]
    k: usize,
    /// Classify each input line as its own document; one JSON value per line.
    #[arg(long)]
    lines: bool,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Labeled text: one example per line, `__label__<name> ... text`.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100)]
    dim: usize,
    #[arg(long, default_value_t = 5)]
    epoch: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    #[arg(long, default_value_t = 1)]
    word_ngrams: usize,
    /// Hash buckets for word and character n-grams (unused without them).
    #[arg(long, default_value_t = 200_000)]
    bucket: usize,
    #[arg(long, default_value_t = 0)]
    minn: usize,
    #[arg(long, default_value_t = 0)]
    maxn: usize,
    #[arg(long, default_value_t = 1)]
    min_count: i64,
    /// softmax, hs (hierarchical softmax) or ova (one-vs-all).
    #[arg(long, default_value = "softmax")]
    loss: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(cmd: ClassifyCommand) -> Result<()> {
    match cmd {
        ClassifyCommand::Langid { model, io } => {
            let path = model.unwrap_or_else(default_model_path);
            let lid = LanguageIdentifier::load(&path)?;
            predict_io(&io, |text, k| lid.top_k(text, k))
        }
        ClassifyCommand::Classify { model, io } => {
            let model = FastText::load(&model)?;
            predict_io(&io, |text, k| top_k(&model, &one_line(text), k))
        }
        ClassifyCommand::Quality { model, io } => {
            let path = model.unwrap_or_else(quality_model_path);
            if !path.exists() {
                anyhow::bail!(
                    "{}: quality model not found (make it with `lm data train-quality`)",
                    path.display()
                );
            }
            let classifier = TextClassifier::quality(FastText::load(&path)?);
            predict_io(&io, |text, _| vec![classifier.classify(text)])
        }
        ClassifyCommand::Nsfw { model, io } => {
            let classifier = TextClassifier::load(&model.unwrap_or_else(nsfw_model_path))?;
            predict_io(&io, |text, _| vec![classifier.classify(text)])
        }
        ClassifyCommand::Toxic { model, io } => {
            let classifier = TextClassifier::load(&model.unwrap_or_else(toxic_model_path))?;
            predict_io(&io, |text, _| vec![classifier.classify(text)])
        }
        ClassifyCommand::TrainClassifier(args) => train_classifier(args),
        ClassifyCommand::TrainQuality {
            out,
            max_per_label,
            seed,
        } => {
            let out = out.unwrap_or_else(quality_model_path);
            let data = default_quality_training_data(&assets_dir(), max_per_label)?;
            let model = train_quality_model(&data, seed)?;
            create_parent(&out)?;
            model.save(&out)?;
            eprintln!(
                "quality model: {} examples, {} words → {}",
                data.lines().count(),
                model.dict.nwords,
                out.display()
            );
            Ok(())
        }
    }
}

fn top_k(model: &FastText, text: &str, k: usize) -> Vec<(String, f32)> {
    model
        .predict(text, k, 0.0)
        .into_iter()
        .map(|p| (strip_label(&p.label).to_string(), p.prob))
        .collect()
}

/// Reads the text, predicts (whole text, or each line with --lines) and prints JSON.
fn predict_io(
    io: &PredictIo,
    predict: impl Fn(&str, usize) -> Vec<(String, f32)> + Sync,
) -> Result<()> {
    let mut text = String::new();
    match &io.input {
        Some(path) => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
        }
    }
    let render = |preds: Vec<(String, f32)>| {
        let items: Vec<_> = preds
            .into_iter()
            .map(|(label, score)| json!({"label": label, "score": score}))
            .collect();
        if io.k <= 1 {
            items
                .into_iter()
                .next()
                .unwrap_or_else(|| json!({"label": null, "score": 0.0}))
        } else {
            serde_json::Value::Array(items)
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if io.lines {
        // Lines are independent documents: classify them on all cores, print in order.
        let lines: Vec<&str> = text.lines().collect();
        let rendered: Vec<String> = lines
            .par_iter()
            .map(|line| render(predict(line, io.k.max(1))).to_string())
            .collect();
        for r in rendered {
            writeln!(out, "{r}")?;
        }
    } else {
        writeln!(out, "{}", render(predict(&text, io.k.max(1))))?;
    }
    out.flush()?;
    Ok(())
}

fn train_classifier(a: TrainArgs) -> Result<()> {
    let loss = match a.loss.as_str() {
        "softmax" => Loss::Softmax,
        "hs" => Loss::HierarchicalSoftmax,
        "ova" => Loss::OneVsAll,
        other => anyhow::bail!("--loss {other}: use softmax, hs or ova"),
    };
    let options = TrainOptions {
        dim: a.dim,
        epoch: a.epoch,
        lr: a.lr,
        word_ngrams: a.word_ngrams,
        bucket: a.bucket,
        minn: a.minn,
        maxn: a.maxn,
        min_count: a.min_count,
        loss,
        seed: a.seed,
    };
    let bytes =
        std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let start = std::time::Instant::now();
    let model = train(&text, &options, &a.input, &mut |epoch, loss| {
        eprintln!(
            "epoch {epoch}/{}: average loss {loss:.4} ({:.1?})",
            a.epoch,
            start.elapsed()
        );
    })?;
    create_parent(&a.out)?;
    model.save(&a.out)?;
    eprintln!(
        "{} words, {} labels → {}",
        model.dict.nwords,
        model.dict.nlabels,
        a.out.display()
    );
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}
