//! `cargo xtask lab5`: the alignment lab end to end on generated data — pretrain a tiny LM
//! from scratch on a noisy teacher's worked arithmetic, SFT it on r1_zero examples, GRPO it
//! on questions alone, and report held-out accuracy after each stage.
//!
//! `--smoke` runs the same pipeline at toy size (CI). The run directory holds the resolved
//! config, the git commit and seed, per-stage metrics, every evaluation's outputs, the final
//! model and `report.md` / `report.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::conformance::BackendKind;
use lm_align::arith_lab::{LabConfig, LabReport, run_lab};
use lm_basics::train::metrics::{Curve, Mark, plot_curves, plot_losses, read_series};
use plotters::style::{BLACK, BLUE, GREEN, RED};

#[derive(Debug, Clone, clap::Args)]
pub struct Lab5Args {
    /// Run directory [default: runs/lab5-<unix time>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Lab config [default: fixtures/configs/lab5.toml, or lab5-smoke.toml with --smoke].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The toy-size configuration (a minute on 2 cores; checks the pipeline, not learning).
    #[arg(long)]
    pub smoke: bool,
    /// Overrides the config's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Require GRPO to raise held-out accuracy over SFT (exit non-zero otherwise).
    #[arg(long)]
    pub require_gain: bool,
    #[arg(long)]
    pub quiet: bool,
    /// Where to train (cuda needs the `cuda` feature).
    #[arg(long, value_enum, default_value = "ndarray")]
    pub backend: BackendKind,
}

pub fn run(args: &Lab5Args, unix_time: u64) -> Result<()> {
    let start = Instant::now();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/configs");
    let path = args.config.clone().unwrap_or_else(|| {
        fixtures.join(if args.smoke {
            "lab5-smoke.toml"
        } else {
            "lab5.toml"
        })
    });
    let mut config = LabConfig::from_toml_file(&path)?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/lab5-{unix_time}")));
    eprintln!("lab5: config {} → {}", path.display(), dir.display());
    let report = run_on(args.backend, &config, &dir, args.quiet)
        .with_context(|| format!("lab 5 in {}", dir.display()))?;
    plot(&dir)?;
    println!("{}", report.to_markdown());
    println!(
        "lab5 done in {:.0} s → {}",
        start.elapsed().as_secs_f64(),
        dir.display()
    );
    if args.require_gain {
        let acc = |s: &str| report.stage(s).map_or(0.0, |r| r.accuracy);
        if acc("grpo") <= acc("sft") {
            bail!(
                "GRPO did not raise held-out accuracy: {:.3} → {:.3}",
                acc("sft"),
                acc("grpo")
            );
        }
    }
    Ok(())
}

fn run_on(
    backend: BackendKind,
    config: &LabConfig,
    dir: &std::path::Path,
    quiet: bool,
) -> Result<LabReport> {
    Ok(match backend {
        BackendKind::Ndarray => {
            run_lab::<lm_core::backends::NdArrayAutodiff>(config, dir, &Default::default(), quiet)?
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda if lm_core::backends::cuda_fusion(false) => {
            run_lab::<lm_core::backends::CudaAutodiff>(config, dir, &Default::default(), quiet)?
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => run_lab::<lm_core::backends::CudaUnfusedAutodiff>(
            config,
            dir,
            &Default::default(),
            quiet,
        )?,
        other => bail!("lab5 runs on ndarray or cuda (with the `cuda` feature), not {other:?}"),
    })
}

/// `pretrain_loss.png`, `sft_loss.png` and `grpo.png` (rewards and held-out accuracy by
/// GRPO step) beside the metrics they draw.
fn plot(dir: &std::path::Path) -> Result<()> {
    for stage in ["pretrain", "sft"] {
        let metrics = dir.join(format!("{stage}.metrics.jsonl"));
        plot_losses(&metrics, &dir.join(format!("{stage}_loss.png")), stage)?;
    }
    let keys = ["reward", "format_reward", "eval_accuracy", "entropy"];
    let mut series = read_series(&dir.join("grpo.metrics.jsonl"), "step", &keys)?.into_iter();
    let mut next = || series.next().unwrap_or_default();
    let curves = [
        Curve {
            label: "train reward",
            points: next(),
            mark: Mark::Line,
            color: BLUE,
        },
        Curve {
            label: "format reward",
            points: next(),
            mark: Mark::Line,
            color: GREEN,
        },
        Curve {
            label: "held-out accuracy",
            points: next(),
            mark: Mark::Points,
            color: RED,
        },
    ];
    plot_curves(&dir.join("grpo.png"), "GRPO", "reward / accuracy", &curves)?;
    let entropy = [Curve {
        label: "entropy",
        points: next(),
        mark: Mark::Line,
        color: BLACK,
    }];
    plot_curves(
        &dir.join("grpo_entropy.png"),
        "GRPO entropy",
        "nats / token",
        &entropy,
    )?;
    Ok(())
}
