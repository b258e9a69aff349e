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

/// The command line of `cargo xtask lab2`; defaults depend on the backend (a CPU gets the
/// tiny size only).
#[derive(Debug, Clone, clap::Args)]
pub struct Lab2Args {
    #[arg(long, value_enum, default_value = "ndarray")]
    pub backend: BackendKind,
    /// Model sizes (tiny, small, medium, large, xl) [default: tiny on ndarray, else
    /// small,medium,large,xl].
    #[arg(long = "size", value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// Context lengths [default: 128 on ndarray, else 128,256,512,1024].
    #[arg(long = "context", value_delimiter = ',')]
    pub contexts: Vec<usize>,
    /// f32 and/or bf16-mixed [default: f32 on ndarray, else both].
    #[arg(long = "precision", value_delimiter = ',', value_parser = parse_config_name::<Precision>)]
    pub precisions: Vec<Precision>,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 10_000)]
    pub vocab: usize,
    /// Untimed steps first (kernel compilation, autotuning).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// auto (the FlashAttention-2 kernel where the backend has it) or plain.
    #[arg(long, default_value = "auto", value_parser = parse_config_name::<AttentionKernel>)]
    pub attention: AttentionKernel,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// JSON lines of bench/pytorch_profile.py for the same cases.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Run directory [default: runs/lab2-<unix time>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

/// A config enum from its config-file name (`bf16-mixed`, `plain`, ...).
pub fn parse_config_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|e| e.to_string())
}

/// `given`, or the default for a CPU or a GPU backend when nothing was given.
fn or_default<T: Clone>(given: Vec<T>, cpu: bool, on_cpu: &[T], on_gpu: &[T]) -> Vec<T> {
    match (given.is_empty(), cpu) {
        (false, _) => given,
        (true, true) => on_cpu.to_vec(),
        (true, false) => on_gpu.to_vec(),
    }
}

impl Lab2Args {
    pub fn into_options(self, unix_time: u64) -> Lab2Options {
        let cpu = self.backend == BackendKind::Ndarray;
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Lab2Options {
            backend: self.backend,
            sizes: or_default(
                self.sizes,
                cpu,
                &names(&["tiny"]),
                &names(&["small", "medium", "large", "xl"]),
            ),
            contexts: or_default(self.contexts, cpu, &[128], &[128, 256, 512, 1024]),
            precisions: or_default(
                self.precisions,
                cpu,
                &[Precision::F32],
                &[Precision::F32, Precision::Bf16Mixed],
            ),
            batch: self.batch,
            vocab: self.vocab,
            warmup: self.warmup,
            steps: self.steps,
            attention: self.attention,
            seed: self.seed,
            baseline: self.baseline,
            run_dir: self
                .run_dir
                .unwrap_or_else(|| PathBuf::from(format!("runs/lab2-{unix_time}"))),
        }
    }
}

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
                    // Each result as it comes (stdout and profile.jsonl), so a run stopped
                    // part-way (a device call's time limit) keeps the cases it finished.
                    println!("JSON {value}");
                    raw += &format!("{value}\n");
                    write_atomic(&dir.join("profile.jsonl"), raw.as_bytes())?;
                    Ok(serde_json::from_value::<ProfileResult>(value)
                        .context("the worker's result")?)
                }
                Err(why) => Err(why),
            };
        let summary = match &outcome {
            Ok(r) => {
                let loss =
                    |l: Option<f32>| l.map_or("not finite".to_string(), |l| format!("{l:.3}"));
                format!(
                    "step {:.2} ms, {:.0} tokens/s, loss {} -> {}",
                    r.step.mean_ms,
                    r.tokens_per_s,
                    loss(r.first_loss),
                    loss(r.last_loss)
                )
            }
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
