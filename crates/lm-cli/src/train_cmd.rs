//! `lm train`, `lm eval`, `lm generate`, `lm plot`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lm_basics::data::TokenFile;
use lm_basics::train::checkpoint::load_model;
use lm_basics::train::metrics::{METRICS_FILE, PLOT_FILE, plot_losses};
use lm_basics::train::{TrainConfig, evaluate, train, train_data_parallel};
use lm_systems::dist::{Communicator, DistEnv, DistRank, TcpCommunicator};

/// Runs `$body` with `B` bound to the autodiff backend named `$name` (`ndarray`, `wgpu`,
/// `cuda`), erroring for one this binary was built without.
macro_rules! with_backend {
    ($name:expr, |$B:ident| $body:expr) => {
        match $name {
            "ndarray" => {
                type $B = lm_core::backends::NdArrayAutodiff;
                $body
            }
            #[cfg(feature = "wgpu")]
            "wgpu" => {
                type $B = lm_core::backends::WgpuAutodiff;
                $body
            }
            #[cfg(feature = "cuda")]
            "cuda" if lm_core::backends::cuda_fusion(true) => {
                type $B = lm_core::backends::CudaAutodiff;
                $body
            }
            // `LM_CUDA_FUSION=0`: without burn's fusion layer.
            #[cfg(feature = "cuda")]
            "cuda" => {
                type $B = lm_core::backends::CudaUnfusedAutodiff;
                $body
            }
            other => anyhow::bail!(
                "backend `{other}` is not in this build: rebuild lm with `--features {other}`"
            ),
        }
    };
}

#[derive(Args)]
pub struct TrainArgs {
    /// TOML config (sections model, data, optimizer, train; see docs/lab1-basics.md).
    #[arg(long)]
    config: PathBuf,
    /// Run directory for checkpoints, metrics and plots.
    #[arg(long)]
    run_dir: PathBuf,
    /// Continue the run directory's checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override a config key, e.g. `--set optimizer.lr=1e-3` (repeatable).
    #[arg(long = "set")]
    overrides: Vec<String>,
    /// Data-parallel over this many processes on this machine (ranks > 0 write into
    /// `<run-dir>/rank<r>/`); `train.ddp` picks the variant: naive, flat, bucketed,
    /// overlapped, zero1 or fsdp.
    #[arg(long, default_value_t = 1)]
    nproc_per_node: usize,
}

pub fn train_cmd(args: TrainArgs) -> anyhow::Result<()> {
    let cfg = TrainConfig::load(&args.config, &args.overrides)?;
    let env = DistEnv::from_env()?;
    if args.nproc_per_node > 1 && env.world_size == 1 {
        // The ranks get this exact command line; WORLD_SIZE in their environment makes them
        // train instead of launching again.
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return crate::launch::launch(args.nproc_per_node, &argv);
    }
    if env.world_size > 1 {
        return train_rank(&cfg, &args, &env);
    }
    let backend = cfg.train.backend.clone();
    let out = with_backend!(backend.as_str(), |B| train::<B>(
        &cfg,
        &args.run_dir,
        args.resume,
        &Default::default(),
        true
    )?);
    report(&out, &args.run_dir);
    Ok(())
}

/// One rank of a data-parallel run (the environment says which).
fn train_rank(cfg: &TrainConfig, args: &TrainArgs, env: &DistEnv) -> anyhow::Result<()> {
    let mode = cfg.train.parallel_mode()?;
    let run_dir = if env.rank == 0 {
        args.run_dir.clone()
    } else {
        args.run_dir.join(format!("rank{}", env.rank))
    };
    let backend = cfg.train.backend.clone();
    let comm = connect(&backend, env)?;
    let out = with_backend!(backend.as_str(), |B| train_data_parallel::<B>(
        cfg,
        &run_dir,
        args.resume,
        &Default::default(),
        env.rank == 0,
        Some(Box::new(DistRank::new(comm, mode)))
    )?);
    if env.rank == 0 {
        report(&out, &run_dir);
    }
    Ok(())
}

/// NCCL for CUDA runs in CUDA builds (`LM_DIST_COMM=tcp` keeps TCP), TCP otherwise.
fn connect(backend: &str, env: &DistEnv) -> anyhow::Result<Box<dyn Communicator>> {
    #[cfg(feature = "cuda")]
    if backend == "cuda" && std::env::var("LM_DIST_COMM").as_deref() != Ok("tcp") {
        return Ok(Box::new(lm_systems::dist::NcclCommunicator::connect(env)?));
    }
    let _ = backend;
    Ok(Box::new(TcpCommunicator::connect(env)?))
}

fn report(out: &lm_basics::train::RunOutcome, run_dir: &std::path::Path) {
    println!(
        "{} steps in {:.1} s ({:.0} tokens/s); last train loss {:.4}{}; run directory {}",
        out.steps,
        out.seconds,
        out.tokens_per_second,
        out.last_train_loss,
        out.eval_loss
            .map(|l| format!(", validation loss {l:.4} (perplexity {:.2})", l.exp()))
            .unwrap_or_default(),
        run_dir.display()
    );
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Token file; default: the checkpoint config's validation file.
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// At most this many batches (0 = the whole file).
    #[arg(long, default_value_t = 0)]
    batches: usize,
}

pub fn eval_cmd(args: EvalArgs) -> anyhow::Result<()> {
    type B = lm_core::backends::NdArray;
    let device = Default::default();
    let (model, cfg) = load_model::<B>(&args.checkpoint, &device)?;
    let path = args.data.unwrap_or_else(|| cfg.data.valid.clone());
    let data = TokenFile::open(&path, cfg.token_dtype()?)?;
    data.check_vocab(cfg.model.vocab_size)?;
    let loss = evaluate(&model, &data, args.batch_size, args.batches, &device)?;
    println!(
        "{}: loss {loss:.4} nats/token, perplexity {:.3}",
        path.display(),
        loss.exp()
    );
    Ok(())
}

#[derive(Args)]
pub struct PlotArgs {
    /// A run directory (with metrics.jsonl).
    run_dir: PathBuf,
}

pub fn plot_cmd(args: PlotArgs) -> anyhow::Result<()> {
    let out = args.run_dir.join(PLOT_FILE);
    plot_losses(
        &args.run_dir.join(METRICS_FILE),
        &out,
        &args.run_dir.display().to_string(),
    )
    .with_context(|| format!("plotting {}", args.run_dir.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
