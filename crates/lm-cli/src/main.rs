//! `lm`: the project's command line. Each lab adds its subcommands here.

mod align_cmd;
mod data_cmd;
mod generate_cmd;
mod launch;
mod model_cmd;
mod pretrained_load;
mod scaling_cmd;
mod tokenizer_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lm", version, about = "CS336 language-model stack in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parameter counts, FLOPs per token and memory of a model config.
    Summary(model_cmd::SummaryArgs),
    /// Initialise a model from a config and seed and save it as safetensors (course names).
    Init(model_cmd::InitArgs),
    /// Byte-level BPE: train, encode files, stats.
    #[command(subcommand)]
    Tokenizer(tokenizer_cmd::TokenizerCommand),
    /// Train a Transformer LM from a TOML config (or resume a run).
    Train(train_cmd::TrainArgs),
    /// Validation loss and perplexity of a checkpoint on a token file.
    Eval(train_cmd::EvalArgs),
    /// Generate from a pretrained model (HF directory or GGUF) or a lab-1 checkpoint:
    /// batched, KV-cached, streaming.
    Generate(generate_cmd::GenerateArgs),
    /// (Re)draw a run directory's loss curve.
    Plot(train_cmd::PlotArgs),
    /// Lab 4: the data pipeline's pieces (extract, langid, classify, mask-pii, gopher, dedup, …).
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Lab 3: scaling-law fits, the experiment planner, the training-API client and server.
    #[command(subcommand)]
    Scaling(scaling_cmd::ScalingCommand),
    /// Lab 5 on a pretrained model: zero-shot evaluation, SFT, expert iteration, GRPO, DPO.
    #[command(subcommand)]
    Align(align_cmd::AlignCommand),
}

fn main() -> ExitCode {
    // Before any GPU device exists: compiled kernels and autotune results persist on disk.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    lm_core::kernel_cache::init();
    let result = match Cli::parse().command {
        Command::Summary(args) => model_cmd::summary(args),
        Command::Init(args) => model_cmd::init(args),
        Command::Tokenizer(cmd) => tokenizer_cmd::run(cmd),
        Command::Train(args) => train_cmd::train_cmd(args),
        Command::Eval(args) => train_cmd::eval_cmd(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Plot(args) => train_cmd::plot_cmd(args),
        Command::Scaling(cmd) => scaling_cmd::run(cmd),
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Align(cmd) => align_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
