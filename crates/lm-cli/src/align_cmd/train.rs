//! `lm align sft|ei|grpo|dpo`: one training loop of `lm_align::train` on a pretrained model,
//! its run directory written as [`RunDir`] says.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use lm_align::grader::r1_zero_reward;
use lm_align::policy::TextCodec;
use lm_align::train::{
    DpoConfig, ExpertIterationConfig, GrpoConfig, SftConfig, expert_iteration, train_dpo,
    train_grpo, train_sft,
};
use lm_core::generate::CausalLm;
use lm_core::pretrained::Decoder;
use lm_core::{LmError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::data::{self, TextData};
use super::eval::{Evaluator, read_limited};
use super::run_dir::RunDir;
use super::{ModelArgs, SamplingArgs};
use crate::pretrained_load::load_pretrained;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The loop's config (TOML; see fixtures/configs/align-*.toml). Unknown keys are errors.
    #[arg(long)]
    config: PathBuf,
    /// sft: `{prompt, response}` JSONL; ei / grpo: GSM8K or MATH JSONL (questions rendered
    /// with --prompt); dpo: `{prompt, chosen, rejected}` JSONL.
    #[arg(long)]
    data: PathBuf,
    /// Where config.toml, run.json, metrics.jsonl, eval/ and the final model/ go.
    #[arg(long)]
    run_dir: PathBuf,
    /// Evaluated every `eval_every` steps of the config (and at the end) into eval/.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Evaluate on the first N examples of --eval-data only.
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Overrides the config's `seed`.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sft,
    ExpertIteration,
    Grpo,
    Dpo,
}

/// A loop's parsed config, with the seed override applied.
enum Config {
    Sft(SftConfig),
    ExpertIteration(ExpertIterationConfig),
    Grpo(GrpoConfig),
    Dpo(DpoConfig),
}

impl Config {
    fn read(algorithm: Algorithm, path: &Path, seed: Option<u64>) -> Result<Self> {
        let mut config = match algorithm {
            Algorithm::Sft => Self::Sft(parse(path)?),
            Algorithm::ExpertIteration => Self::ExpertIteration(parse(path)?),
            Algorithm::Grpo => Self::Grpo(parse(path)?),
            Algorithm::Dpo => Self::Dpo(parse(path)?),
        };
        if let Some(s) = seed {
            *config.seed_mut() = s;
        }
        Ok(config)
    }

    fn seed_mut(&mut self) -> &mut u64 {
        match self {
            Self::Sft(c) => &mut c.seed,
            Self::ExpertIteration(c) => &mut c.seed,
            Self::Grpo(c) => &mut c.seed,
            Self::Dpo(c) => &mut c.seed,
        }
    }

    fn eval_every(&self) -> usize {
        match self {
            Self::Sft(c) => c.eval_every,
            Self::ExpertIteration(c) => c.eval_every,
            Self::Grpo(c) => c.eval_every,
            Self::Dpo(c) => c.eval_every,
        }
    }

    fn seed(&self) -> u64 {
        match self {
            Self::Sft(c) => c.seed,
            Self::ExpertIteration(c) => c.seed,
            Self::Grpo(c) => c.seed,
            Self::Dpo(c) => c.seed,
        }
    }

    /// Writes the resolved config and provenance, naming the loop.
    fn write_start(&self, run: &RunDir) -> Result<()> {
        let seed = self.seed();
        match self {
            Self::Sft(c) => run.write_start(c, "sft", seed),
            Self::ExpertIteration(c) => run.write_start(c, "expert_iteration", seed),
            Self::Grpo(c) => run.write_start(c, "grpo", seed),
            Self::Dpo(c) => run.write_start(c, "dpo", seed),
        }
    }
}

fn parse<C: DeserializeOwned + Serialize>(path: &Path) -> Result<C> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    toml::from_str(&text).map_err(|e| LmError::BadFile {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn run(algorithm: Algorithm, args: &TrainArgs) -> anyhow::Result<()> {
    match args.model.backend.as_str() {
        "ndarray" => run_on::<lm_core::backends::NdArrayAutodiff>(algorithm, args),
        #[cfg(feature = "cuda")]
        "cuda" => run_on::<lm_core::backends::CudaAutodiff>(algorithm, args),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<lm_core::backends::WgpuAutodiff>(algorithm, args),
        other => {
            bail!("backend `{other}` is not in this build: rebuild lm with `--features {other}`")
        }
    }
}

fn run_on<B: AutodiffBackend>(algorithm: Algorithm, args: &TrainArgs) -> anyhow::Result<()> {
    // Every input is read before the model loads, so a bad one fails fast.
    let config = Config::read(algorithm, &args.config, args.seed)?;
    let text = match algorithm {
        Algorithm::Sft => data::read_sft(&args.data)?,
        Algorithm::ExpertIteration | Algorithm::Grpo => data::read_questions(&args.data)?,
        Algorithm::Dpo => data::read_preferences(&args.data)?,
    };
    let eval_set = args
        .eval_data
        .as_deref()
        .map(|p| read_limited(p, args.eval_limit))
        .transpose()?;
    let template = args.sampling.template()?;
    let params = args.sampling.params()?;
    let run = RunDir::create(&args.run_dir)?;
    config.write_start(&run)?;

    let started = Instant::now();
    let device = B::Device::default();
    // No packed blocks: training updates the f32 weights, which rollouts must use.
    let tokenizer = args.model.tokenizer.as_deref();
    let loaded = load_pretrained::<B>(&args.model.model, tokenizer, &device, false)?;
    eprintln!(
        "loaded {} ({} parameters) in {:.1?}",
        args.model.model.display(),
        loaded.model.config.num_params(),
        started.elapsed()
    );
    let codec: &dyn TextCodec = &loaded.tokenizer;
    let evaluator = eval_set.map(|dataset| Evaluator {
        codec,
        dataset,
        template: template.clone(),
        params,
        batch: args.sampling.batch,
        seed: config.seed(),
    });
    let mut periodic = |m: &Decoder<B::InnerBackend>, step: usize| -> Result<f64> {
        let evaluator = evaluator.as_ref().expect("only passed with eval data");
        Ok(evaluator
            .run(m, &run.eval_dir(&format!("step-{step}")))?
            .accuracy)
    };
    let hook: Option<Hook<'_, B>> = if evaluator.is_some() {
        Some(&mut periodic)
    } else {
        None
    };
    let policy = train(&config, &text, &template, loaded.model, codec, &run, hook)?;
    let trained = policy.valid();
    if let Some(e) = &evaluator
        && config.eval_every() == 0
    {
        // The loops evaluate their last step themselves when eval_every > 0.
        let report = e.run(&trained, &run.eval_dir("final"))?;
        eprintln!("final evaluation: accuracy {:.4}", report.accuracy);
    }
    run.finish(&trained, loaded.tokenizer_file.as_deref())?;
    if let Err(e) = super::plot::plot_metrics(&run.path, algorithm) {
        eprintln!("warning: no metrics plot: {e:#}");
    }
    println!(
        "finished in {:.1?}; model saved to {}",
        started.elapsed(),
        run.model_dir().display()
    );
    Ok(())
}

type Hook<'h, B> =
    &'h mut dyn FnMut(&Decoder<<B as AutodiffBackend>::InnerBackend>, usize) -> Result<f64>;

/// Tokenizes the data and runs the loop `config` names; returns the trained policy.
fn train<B: AutodiffBackend>(
    config: &Config,
    text: &TextData,
    template: &lm_align::eval::PromptTemplate,
    policy: Decoder<B>,
    codec: &dyn TextCodec,
    run: &RunDir,
    hook: Option<Hook<'_, B>>,
) -> Result<Decoder<B>> {
    let mut log = run.metrics("metrics")?;
    let pad = codec.pad_id();
    let reward = &r1_zero_reward;
    let policy = match (config, text) {
        (Config::Sft(c), TextData::Sft(examples)) => {
            let pairs = data::sft_pairs(examples, codec)?;
            train_sft(policy, &pairs, pad, c, &mut log, hook)?.0
        }
        (Config::Dpo(c), TextData::Preferences(items)) => {
            let pairs = data::preference_pairs(items, codec)?;
            train_dpo(policy, &pairs, pad, c, &mut log, hook)?.0
        }
        (Config::Grpo(c), TextData::Questions(items)) => {
            let questions = data::questions(items, template, codec)?;
            let max_len = CausalLm::<B>::max_positions(&policy);
            train_grpo(
                policy, codec, &questions, reward, max_len, c, &mut log, hook,
            )?
            .0
        }
        (Config::ExpertIteration(c), TextData::Questions(items)) => {
            let questions = data::questions(items, template, codec)?;
            let max_len = CausalLm::<B>::max_positions(&policy);
            let mut sft_log = run.metrics("sft-metrics")?;
            expert_iteration(
                policy,
                codec,
                &questions,
                reward,
                max_len,
                c,
                &mut log,
                &mut sft_log,
                hook,
            )?
            .0
        }
        _ => unreachable!("run_on reads the data the algorithm's config goes with"),
    };
    Ok(policy)
}
