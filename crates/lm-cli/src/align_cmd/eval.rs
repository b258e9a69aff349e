//! `lm align eval`, and the evaluator the training runs call every `eval_every` steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::tensor::backend::Backend;
use clap::Args;
use lm_align::eval::{Dataset, EvalReport, PromptTemplate, evaluate, read_dataset};
use lm_align::policy::TextCodec;
use lm_align::rollout::RolloutOptions;
use lm_core::Result;
use lm_core::generate::{CausalLm, SamplingParams};

use super::{ModelArgs, SamplingArgs};
use crate::pretrained_load::load_pretrained;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// GSM8K / MATH JSONL or MMLU CSV (or a folder of them); the format is detected.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate the first N examples only.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Every answer's sampling seed derives from this, its example and sample index.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Writes records.jsonl (one answer per example) and summary.json here.
    #[arg(long)]
    output: PathBuf,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    match args.model.backend.as_str() {
        "ndarray" => run_on::<lm_core::backends::NdArray>(args),
        #[cfg(feature = "cuda")]
        "cuda" if lm_core::backends::cuda_fusion(false) => run_on::<lm_core::backends::Cuda>(args),
        #[cfg(feature = "cuda")]
        "cuda" => run_on::<lm_core::backends::CudaUnfused>(args),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<lm_core::backends::Wgpu>(args),
        other => {
            bail!("backend `{other}` is not in this build: rebuild lm with `--features {other}`")
        }
    }
}

fn run_on<B: Backend>(args: &EvalArgs) -> anyhow::Result<()> {
    // Inputs first: a bad data file or template fails before the model loads.
    let dataset = read_limited(&args.data, args.limit)?;
    let template = args.sampling.template()?;
    let params = args.sampling.params()?;
    let started = Instant::now();
    // Evaluation only decodes: a GGUF model's quantised blocks serve the CPU products.
    let loaded = load_pretrained::<B>(
        &args.model.model,
        args.model.tokenizer.as_deref(),
        &Default::default(),
        args.model.backend == "ndarray",
    )?;
    eprintln!(
        "loaded {} in {:.1?}",
        args.model.model.display(),
        started.elapsed()
    );
    let evaluator = Evaluator {
        codec: &loaded.tokenizer,
        dataset,
        template,
        params,
        batch: args.sampling.batch,
        seed: args.seed,
    };
    let started = Instant::now();
    let report = evaluator.run(&loaded.model, &args.output)?;
    println!(
        "{} examples: accuracy {:.4}, format rate {:.4}, mean response {:.1} tokens ({:.1?}); wrote {}",
        report.n,
        report.accuracy,
        report.format_rate,
        report.mean_response_tokens,
        started.elapsed(),
        args.output.display()
    );
    Ok(())
}

/// Reads an evaluation set, keeping its first `limit` examples.
pub fn read_limited(path: &Path, limit: Option<usize>) -> Result<Dataset> {
    let mut dataset = read_dataset(path)?;
    if let Some(n) = limit {
        dataset.examples.truncate(n);
    }
    Ok(dataset)
}

/// One evaluation setting: a set, its prompt template and how answers are sampled.
pub struct Evaluator<'a> {
    pub codec: &'a dyn TextCodec,
    pub dataset: Dataset,
    pub template: PromptTemplate,
    pub params: SamplingParams,
    /// KV-cache rows.
    pub batch: usize,
    pub seed: u64,
}

impl Evaluator<'_> {
    /// Evaluates `model` and writes the report to `out`.
    pub fn run<B: Backend, M: CausalLm<B>>(&self, model: &M, out: &Path) -> Result<EvalReport> {
        let opts = RolloutOptions {
            // Rollouts size the cache to the answers; these are the upper bounds.
            max_batch_rows: self.batch,
            max_len: model.max_positions(),
            seed: self.seed,
        };
        let report = evaluate(
            model,
            self.codec,
            &self.dataset,
            &self.template,
            &self.params,
            &opts,
        )?;
        report.write(out)?;
        Ok(report)
    }
}
