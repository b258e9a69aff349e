//! `lm align …`: lab 5 on a pretrained model (Hugging Face directory or GGUF): zero-shot
//! evaluation, and the SFT, expert-iteration, GRPO and DPO loops of `lm_align::train`, each
//! run writing its config, provenance, metrics, periodic evaluations and the final model.

mod data;
mod eval;
mod plot;
mod run_dir;
mod train;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lm_align::eval::PromptTemplate;
use lm_core::generate::SamplingParams;

use train::Algorithm;

#[derive(Subcommand)]
pub enum AlignCommand {
    /// Zero-shot accuracy on a math set (GSM8K / MATH JSONL) or MMLU (CSV or folder).
    Eval(eval::EvalArgs),
    /// Supervised fine-tuning on `{prompt, response}` JSONL (response-only loss).
    Sft(train::TrainArgs),
    /// Expert iteration: sample, keep the r1_zero-correct rollouts, SFT on them.
    Ei(train::TrainArgs),
    /// GRPO with the r1_zero reward on a GSM8K / MATH set.
    Grpo(train::TrainArgs),
    /// DPO on `{prompt, chosen, rejected}` JSONL against the starting model.
    Dpo(train::TrainArgs),
}

pub fn run(cmd: AlignCommand) -> anyhow::Result<()> {
    match cmd {
        AlignCommand::Eval(args) => eval::run(&args),
        AlignCommand::Sft(args) => train::run(Algorithm::Sft, &args),
        AlignCommand::Ei(args) => train::run(Algorithm::ExpertIteration, &args),
        AlignCommand::Grpo(args) => train::run(Algorithm::Grpo, &args),
        AlignCommand::Dpo(args) => train::run(Algorithm::Dpo, &args),
    }
}

/// The model to start from, as `lm generate --model` takes it.
#[derive(Args)]
pub struct ModelArgs {
    /// A Hugging Face directory (config.json, *.safetensors, tokenizer.json) or a GGUF file.
    #[arg(long)]
    model: PathBuf,
    /// A tokenizer.json overriding the model's own.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// `ndarray` (CPU) or a GPU backend this build has (`cuda`, `wgpu`).
    #[arg(long, default_value = "ndarray")]
    backend: String,
}

/// How questions become prompts and how evaluation samples answers.
#[derive(Args)]
pub struct SamplingArgs {
    /// Prompt template with a `{question}` slot: `r1_zero` (the course's, from
    /// `$LM_SHARED/cs336/a5/prompts/`) or a file.
    #[arg(long, default_value = "r1_zero")]
    prompt: String,
    /// Evaluation sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Most tokens an evaluation answer may have.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Stop strings of evaluation answers (repeatable; kept in the answer).
    #[arg(long = "stop", default_values_t = ["</answer>".to_string()])]
    stop: Vec<String>,
    /// Sequences decoded together while evaluating (KV-cache rows).
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

impl SamplingArgs {
    pub fn template(&self) -> anyhow::Result<PromptTemplate> {
        if self.prompt != "r1_zero" {
            return Ok(PromptTemplate::from_file(Path::new(&self.prompt))?);
        }
        let tried = shared_dirs();
        for dir in &tried {
            if dir.join("cs336/a5/prompts/r1_zero.prompt").is_file() {
                return Ok(PromptTemplate::r1_zero(dir)?);
            }
        }
        bail!(
            "--prompt r1_zero: cs336/a5/prompts/r1_zero.prompt is in none of {} (set $LM_SHARED or pass --prompt FILE)",
            tried
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    pub fn params(&self) -> anyhow::Result<SamplingParams> {
        let params = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            ..SamplingParams::default()
        };
        params.validate().context("evaluation sampling")?;
        Ok(params)
    }
}

/// Where the course's shared files may be: `$LM_SHARED`, `../shared`, and the `shared/`
/// beside the checkout this binary was built from.
fn shared_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.push(PathBuf::from("../shared"));
    dirs.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared"
    )));
    dirs
}
