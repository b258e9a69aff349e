//! `lm summary` and `lm init`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lm_core::backends::NdArray;
use lm_core::summary::ModelSummary;
use lm_core::{TransformerConfig, TransformerLm};

#[derive(Args)]
pub struct SummaryArgs {
    /// A JSON file with the model's fields (vocab_size, context_length, d_model, num_layers,
    /// num_heads, d_ff[, rope_theta, eps]); default: the handout's TinyStories model.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Sequence length for FLOPs and activations; default: the context length.
    #[arg(long)]
    seq_len: Option<usize>,
}

#[derive(Args)]
pub struct InitArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<TransformerConfig> {
    let cfg = match path {
        None => TransformerConfig::tiny_stories(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a model config", p.display()))?
        }
    };
    cfg.validate()?;
    Ok(cfg)
}

pub fn summary(args: SummaryArgs) -> anyhow::Result<()> {
    let cfg = load_config(args.config.as_ref())?;
    let model = TransformerLm::<NdArray>::new(&cfg, 0, &Default::default())?;
    let seq = args.seq_len.unwrap_or(cfg.context_length);
    print!("{}", ModelSummary::new(&model, &cfg, args.batch_size, seq));
    Ok(())
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let cfg = load_config(args.config.as_ref())?;
    let model = TransformerLm::<NdArray>::new(&cfg, args.seed, &Default::default())?;
    lm_core::params::save_safetensors(&model, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
