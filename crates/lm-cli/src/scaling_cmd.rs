//! `lm scaling …`: lab 3 — fit scaling laws to runs, plan an IsoFLOP grid, talk to the
//! training API (with the local budget ledger), and serve that API locally.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lm_scaling::api::server::Submission;
use lm_scaling::api::{
    ApiClient, COURSE_BUDGET, LossOracle, Plan, PlanOptions, RunConfig, ServerConfig, Submitted,
    SurfaceOracle, TrainingOracle, plan, server,
};
use lm_scaling::{AnalysisOptions, analyze, load_runs, report};

#[derive(Subcommand)]
pub enum ScalingCommand {
    /// Fit every method (IsoFLOP, Chinchilla approaches 2 and 3) to a JSON/CSV of runs.
    Fit(FitArgs),
    /// Plan an IsoFLOP grid of training-API runs under a FLOP or GPU-hour budget.
    Plan(PlanArgs),
    /// Query the training API for one run or every run of a plan (ledger-checked).
    Query(QueryArgs),
    /// The runs the API has for this key, as a runs file for `lm scaling fit`.
    Experiments(ExperimentsArgs),
    /// FLOPs used according to the server and to the local ledger.
    Budget(ClientArgs),
    /// Hand in the final prediction (once).
    Submit(SubmitArgs),
    /// Serve the training API on this machine (loss surface or real training runs).
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct FitArgs {
    /// Runs: a JSON list of {parameters, compute_budget, final_loss} (the course's
    /// isoflops_curves.json) or a CSV with those columns.
    #[arg(long)]
    runs: PathBuf,
    /// Output directory for report.md, report.json and the plots.
    #[arg(long, default_value = "runs/scaling-fit")]
    out: PathBuf,
    /// Budgets to predict N_opt and D_opt at (FLOPs, comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1e23, 1e24])]
    predict: Vec<f64>,
    /// Bootstrap resamples for the intervals (0: none).
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct PlanArgs {
    /// Total budget in FLOPs (default: the course's 2e18).
    #[arg(long, default_value_t = COURSE_BUDGET, conflicts_with = "gpu_hours")]
    budget: f64,
    /// Total budget in GPU-hours instead (at --tflops peak and --mfu utilisation).
    #[arg(long)]
    gpu_hours: Option<f64>,
    #[arg(long, default_value_t = 989.0)]
    tflops: f64,
    #[arg(long, default_value_t = 0.4)]
    mfu: f64,
    /// Compute budgets (IsoFLOP curves) in the plan.
    #[arg(long, default_value_t = 6)]
    levels: usize,
    /// Model sizes per compute budget.
    #[arg(long, default_value_t = 5)]
    sizes: usize,
    /// Largest over smallest model of one budget.
    #[arg(long, default_value_t = 16.0)]
    spread: f64,
    /// Smallest compute budget considered (FLOPs).
    #[arg(long, default_value_t = 1e14)]
    min_level: f64,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 6e-4)]
    learning_rate: f64,
    /// Write the plan as JSON here (for `lm scaling query --plan`).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The API's base URL.
    #[arg(long, env = "LM_API_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    #[arg(long, env = "LM_API_KEY")]
    api_key: String,
    /// The local record of every query and its cost.
    #[arg(long, default_value = "runs/scaling/ledger.jsonl")]
    ledger: PathBuf,
    /// FLOPs this client may spend in total (checked against the ledger before each query).
    #[arg(long, default_value_t = COURSE_BUDGET)]
    budget: f64,
}

impl ClientArgs {
    fn client(&self) -> Result<ApiClient> {
        Ok(ApiClient::new(
            &self.url,
            &self.api_key,
            &self.ledger,
            self.budget,
        )?)
    }
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Every run of a plan made by `lm scaling plan --out`.
    #[arg(long, conflicts_with_all = ["d_model", "num_layers", "num_heads", "train_flops"])]
    plan: Option<PathBuf>,
    #[arg(long, required_unless_present = "plan")]
    d_model: Option<usize>,
    #[arg(long, required_unless_present = "plan")]
    num_layers: Option<usize>,
    #[arg(long, required_unless_present = "plan")]
    num_heads: Option<usize>,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 6e-4)]
    learning_rate: f64,
    /// Training compute in FLOPs (one of 1e13, 3e13, 6e13, …, 1e18).
    #[arg(long, required_unless_present = "plan")]
    train_flops: Option<f64>,
    /// Submit every run as a job first (`POST /jobs`), then poll them (seconds between polls).
    #[arg(long)]
    poll: Option<f64>,
}

#[derive(Args)]
pub struct ExperimentsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Write the runs here (JSON, the format `lm scaling fit --runs` reads).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The budget the prediction is for (FLOPs).
    #[arg(long)]
    compute_budget: f64,
    #[arg(long)]
    parameters: f64,
    #[arg(long)]
    tokens: f64,
    #[arg(long)]
    predicted_loss: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// E + A/N^α + B/D^β with noise (instant).
    Surface,
    /// Real short training runs with lab 1's trainer on the CPU.
    Train,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Budget per API key (FLOPs).
    #[arg(long, default_value_t = COURSE_BUDGET)]
    budget: f64,
    /// Keep the accounts (runs, FLOPs used) in this file across restarts.
    #[arg(long)]
    state: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Backend::Surface)]
    backend: Backend,
    /// Surface backend: relative noise on each loss.
    #[arg(long, default_value_t = 0.005)]
    noise: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train backend: the lab-1 config giving data, vocabulary, context and batch size.
    #[arg(long, required_if_eq("backend", "train"))]
    config: Option<PathBuf>,
    /// Train backend: the fraction of each request's FLOPs actually trained.
    #[arg(long, default_value_t = 1e-4)]
    flops_scale: f64,
    /// Train backend: where the runs' directories go.
    #[arg(long, default_value = "runs/scaling-serve")]
    work_dir: PathBuf,
}

pub fn run(cmd: ScalingCommand) -> Result<()> {
    match cmd {
        ScalingCommand::Fit(a) => fit(a),
        ScalingCommand::Plan(a) => plan_cmd(a),
        ScalingCommand::Query(a) => query(a),
        ScalingCommand::Experiments(a) => experiments(a),
        ScalingCommand::Budget(a) => budget(a),
        ScalingCommand::Submit(a) => submit(a),
        ScalingCommand::Serve(a) => serve(a),
    }
}

fn fit(a: FitArgs) -> Result<()> {
    let runs = load_runs(&a.runs)?;
    let opts = AnalysisOptions {
        predict_budgets: a.predict,
        bootstrap: a.bootstrap,
        confidence: a.confidence,
        seed: a.seed,
        ..Default::default()
    };
    eprintln!(
        "fitting {} runs ({} bootstrap resamples)…",
        runs.len(),
        opts.bootstrap
    );
    let analysis = analyze(&runs, &opts)?;
    let written = report::write_all(&a.out, &runs, &analysis)?;
    let meta = serde_json::json!({
        "git_commit": lm_basics::train::checkpoint::git_commit(),
        "input": a.runs,
        "options": opts,
        "seed": opts.seed,
    });
    lm_core::fsutil::write_atomic(
        &a.out.join("run.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    println!("{}", report::markdown(&analysis));
    eprintln!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn plan_cmd(a: PlanArgs) -> Result<()> {
    let total_budget = match a.gpu_hours {
        Some(h) => PlanOptions::flops_from_gpu_hours(h, a.tflops, a.mfu),
        None => a.budget,
    };
    let opts = PlanOptions {
        total_budget,
        levels: a.levels,
        sizes_per_level: a.sizes,
        size_spread: a.spread,
        min_level: a.min_level as u64,
        batch_size: a.batch_size,
        learning_rate: a.learning_rate,
    };
    let p = plan(&opts)?;
    print_plan(&p);
    if let Some(out) = a.out {
        lm_core::fsutil::write_atomic(&out, serde_json::to_string_pretty(&p)?.as_bytes())?;
        eprintln!("plan written to {}", out.display());
    }
    Ok(())
}

fn print_plan(p: &Plan) {
    println!(
        "{:>10} {:>8} {:>7} {:>6} {:>12} {:>12}",
        "FLOPs", "d_model", "layers", "heads", "params", "tokens"
    );
    for r in &p.runs {
        println!(
            "{:>10.0e} {:>8} {:>7} {:>6} {:>12.3e} {:>12.3e}",
            r.train_flops as f64,
            r.d_model,
            r.num_layers,
            r.num_heads,
            r.parameters(),
            r.tokens()
        );
    }
    println!(
        "{} runs, {:.3e} FLOPs of a {:.3e} budget",
        p.runs.len(),
        p.total_flops,
        p.options.total_budget
    );
}

fn query(a: QueryArgs) -> Result<()> {
    let configs: Vec<RunConfig> = match &a.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            serde_json::from_str::<Plan>(&text)
                .with_context(|| {
                    format!(
                        "{}: not a plan from `lm scaling plan --out`",
                        path.display()
                    )
                })?
                .runs
        }
        None => vec![RunConfig {
            d_model: a.d_model.context("--d-model")?,
            num_layers: a.num_layers.context("--num-layers")?,
            num_heads: a.num_heads.context("--num-heads")?,
            batch_size: a.batch_size,
            learning_rate: a.learning_rate,
            train_flops: a.train_flops.context("--train-flops")? as u64,
        }],
    };
    let mut client = a.client.client()?;
    let mut failures = 0;
    let mut jobs = Vec::new();
    if a.poll.is_some() {
        for c in &configs {
            match client.submit_job(c) {
                Ok(Submitted::Job(job)) => jobs.push(Some(job)),
                Ok(Submitted::Known(_)) => jobs.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        eprintln!("{} jobs queued", jobs.iter().flatten().count());
    }
    let interval = Duration::from_secs_f64(a.poll.unwrap_or(1.0).max(0.01));
    for (i, c) in configs.iter().enumerate() {
        let what = format!(
            "[{}/{}] d_model {} layers {} heads {} lr {} C {:.0e}",
            i + 1,
            configs.len(),
            c.d_model,
            c.num_layers,
            c.num_heads,
            c.learning_rate,
            c.train_flops as f64
        );
        let answer = match jobs.get(i).copied().flatten() {
            Some(job) => client.wait(&job, interval),
            None => client.loss(c),
        };
        match answer {
            Ok(o) => println!(
                "{what}: loss {:.4}{}",
                o.loss,
                if o.free { " (already run, free)" } else { "" }
            ),
            Err(e) => {
                failures += 1;
                eprintln!("{what}: {e}");
            }
        }
    }
    let l = client.ledger();
    eprintln!(
        "ledger {}: {:.3e} of {:.3e} FLOPs used",
        l.path().display(),
        l.used(),
        l.budget()
    );
    if failures > 0 {
        bail!("{failures} of {} queries failed", configs.len());
    }
    Ok(())
}

fn experiments(a: ExperimentsArgs) -> Result<()> {
    let records = a.client.client()?.previous_runs()?;
    let runs: Vec<lm_scaling::Run> = records.iter().map(|r| r.to_run()).collect();
    let json = serde_json::to_string_pretty(&runs)?;
    match a.out {
        Some(out) => {
            lm_core::fsutil::write_atomic(&out, json.as_bytes())?;
            eprintln!("{} runs written to {}", runs.len(), out.display());
        }
        None => println!("{json}"),
    }
    Ok(())
}

fn budget(a: ClientArgs) -> Result<()> {
    let client = a.client()?;
    let server = client.total_flops_used()?;
    let l = client.ledger();
    println!("server: {server:.3e} FLOPs used");
    println!(
        "ledger: {:.3e} of {:.3e} FLOPs used ({} queries)",
        l.used(),
        l.budget(),
        l.entries().len()
    );
    Ok(())
}

fn submit(a: SubmitArgs) -> Result<()> {
    let sub = Submission {
        compute_budget: a.compute_budget,
        parameters: a.parameters,
        tokens: a.tokens,
        predicted_loss: a.predicted_loss,
    };
    a.client.client()?.submit(&sub)?;
    println!("submitted");
    Ok(())
}

fn serve(a: ServeArgs) -> Result<()> {
    let oracle: Arc<dyn LossOracle> = match a.backend {
        Backend::Surface => Arc::new(SurfaceOracle {
            noise: a.noise,
            seed: a.seed,
            ..Default::default()
        }),
        Backend::Train => {
            let path = a
                .config
                .context("--config is needed with --backend train")?;
            let base = lm_basics::train::TrainConfig::load(&path, &[])?;
            if base.train.backend != "ndarray" {
                bail!(
                    "{}: train.backend must be ndarray for `lm scaling serve`",
                    path.display()
                );
            }
            Arc::new(TrainingOracle::<lm_core::backends::NdArrayAutodiff>::new(
                base,
                a.flops_scale,
                a.work_dir,
                Default::default(),
            ))
        }
    };
    eprintln!(
        "backend: {}; budget {:.3e} FLOPs per key",
        oracle.describe(),
        a.budget
    );
    server::serve(
        a.addr,
        ServerConfig {
            oracle,
            budget: a.budget,
            state_file: a.state,
        },
    )?;
    Ok(())
}
