//! `cargo xtask lab2`: the profiling harness over the course's model sizes (lm-systems),
//! one child process per case, beside the PyTorch baseline's numbers for the same cases
//! (`bench/pytorch_profile.py`, run first in the same device session: `bench/gpu_lab2.sh`).
//!
//! Writes into the run directory: `run.json` (git commit, the options, the seed),
//! `profile.jsonl` (our raw results), `profile.csv`, `profile.md` (the table) and
//! `profile.png` (tokens/s against context length, ours and PyTorch's).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lm_core::config::{AttentionKernel, Precision};
use lm_core::fsutil::write_atomic;
use lm_systems::profile::{ProfileCase, ProfileResult, profile};
use lm_systems::report::{BaselineResult, Row, csv, parse_baseline, precision_name, table};
use serde::Serialize;

use crate::conformance::BackendKind;

#[derive(Debug, Clone, Serialize)]
pub struct Lab2Options {
    pub backend: BackendKind,
    pub sizes: Vec<String>,
    pub contexts: Vec<usize>,
    pub precisions: Vec<Precision>,
    pub batch: usize,
    pub vocab: usize,
    pub warmup: usize,
    pub steps: usize,
    pub attention: AttentionKernel,
    pub seed: u64,
    /// JSON lines from `bench/pytorch_profile.py` for the same cases.
    pub baseline: Option<PathBuf>,
    pub run_dir: PathBuf,
}

impl Lab2Options {
    /// Every (size, context, precision), in that nesting order.
    pub fn cases(&self) -> Vec<ProfileCase> {
        let mut cases = Vec::new();
        for size in &self.sizes {
            for &context in &self.contexts {
                for &precision in &self.precisions {
                    cases.push(ProfileCase {
                        size: size.clone(),
                        context,
                        batch: self.batch,
                        vocab: self.vocab,
                        precision,
                        attention: self.attention,
                        warmup: self.warmup,
                        steps: self.steps,
                        seed: self.seed,
                    });
                }
            }
        }
        cases
    }
}

fn read_baseline(path: &Path) -> Result<Vec<BaselineResult>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_baseline(&text)
        .with_context(|| format!("{}: not the baseline's JSON lines", path.display()))
}

pub fn run(opts: &Lab2Options) -> Result<()> {
    let cases = opts.cases();
    if cases.is_empty() {
        bail!("nothing to profile: give at least one --size, --context and --precision");
    }
    for case in &cases {
        case.model_config()
            .with_context(|| format!("case {case:?}"))?;
    }
    let baseline = match &opts.baseline {
        Some(path) => read_baseline(path)?,
        None => Vec::new(),
    };
    let dir = &opts.run_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let run_json = serde_json::json!({
        "task": "cargo xtask lab2",
        "git_commit": lm_basics::train::checkpoint::git_commit(),
        "options": opts,
        "seed": opts.seed,
    });
    write_atomic(
        &dir.join("run.json"),
        serde_json::to_string_pretty(&run_json)?.as_bytes(),
    )?;

    let started = Instant::now();
    let mut rows = Vec::new();
    let mut raw = String::new();
    for (i, case) in cases.iter().enumerate() {
        let args = vec![
            "lab2-worker".to_string(),
            "--backend".into(),
            format!("{:?}", opts.backend).to_lowercase(),
            "--case".into(),
            serde_json::to_string(case)?,
        ];
        let outcome =
            match crate::child::run_json_worker(&args)? {
                Ok(value) => {
                    raw += &format!("{value}\n");
                    Ok(serde_json::from_value::<ProfileResult>(value)
                        .context("the worker's result")?)
                }
                Err(why) => Err(why),
            };
        let summary = match &outcome {
            Ok(r) => format!(
                "step {:.2} ms, {:.0} tokens/s",
                r.step.mean_ms, r.tokens_per_s
            ),
            Err(why) => why.clone(),
        };
        println!(
            "[{}/{}] {} ctx {} {}: {summary} ({:.0} s so far)",
            i + 1,
            cases.len(),
            case.size,
            case.context,
            precision_name(case.precision),
            started.elapsed().as_secs_f64()
        );
        rows.push(Row::new(case.clone(), outcome, &baseline));
    }
    let table = table(&rows);
    println!("\n{table}");
    write_atomic(&dir.join("profile.jsonl"), raw.as_bytes())?;
    write_atomic(&dir.join("profile.csv"), csv(&rows).as_bytes())?;
    write_atomic(&dir.join("profile.md"), table.as_bytes())?;
    crate::lab2_plot::plot(&rows, &dir.join("profile.png"))?;
    println!(
        "wrote {}/profile.{{csv,md,jsonl,png}} and run.json",
        dir.display()
    );
    Ok(())
}

/// The child process: one case, one JSON line on stdout.
pub fn worker(backend: BackendKind, case: &str) -> Result<()> {
    let case: ProfileCase = serde_json::from_str(case).context("--case")?;
    let result =
        crate::with_autodiff_backend!(backend, |B| profile::<B>(&case, &Default::default())
            .map_err(anyhow::Error::from))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
