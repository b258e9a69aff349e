//! `lm`: the project's command line. Each lab adds its subcommands here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lm_core::backends::NdArray;
use lm_core::summary::ModelSummary;
use lm_core::{TransformerConfig, TransformerLm};

#[derive(Parser)]
#[command(name = "lm", version, about = "CS336 language-model stack in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parameter counts, FLOPs per token and memory of a model config.
    Summary {
        /// A JSON file with the model's fields (vocab_size, context_length, d_model, num_layers,
        /// num_heads, d_ff[, rope_theta, eps]); default: the handout's TinyStories model.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        /// Sequence length for FLOPs and activations; default: the context length.
        #[arg(long)]
        seq_len: Option<usize>,
    },
    /// Initialise a model from a config and seed and save it as safetensors (course names).
    Init {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
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

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = Default::default();
    match cli.command {
        Command::Summary {
            config,
            batch_size,
            seq_len,
        } => {
            let cfg = load_config(config.as_ref())?;
            let model = TransformerLm::<NdArray>::new(&cfg, 0, &device)?;
            let seq = seq_len.unwrap_or(cfg.context_length);
            print!("{}", ModelSummary::new(&model, &cfg, batch_size, seq));
        }
        Command::Init { config, seed, out } => {
            let cfg = load_config(config.as_ref())?;
            let model = TransformerLm::<NdArray>::new(&cfg, seed, &device)?;
            lm_core::params::save_safetensors(&model, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
