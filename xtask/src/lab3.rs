//! `cargo xtask lab3`: the scaling-laws lab end to end on the CPU, in well under a minute.
//!
//! 1. The course's `isoflops_curves.json`: every fit, report and plots in `<run>/course/`.
//! 2. The training-API loop offline: a local server (loss surface with noise) on a loopback
//!    port, an IsoFLOP plan under the course's 2e18-FLOP budget, every run queried through
//!    the ledger-checked client, the fits, and the predictions — beside the server's true
//!    optimum — in `<run>/api/`.
//!
//! `<run>/run.json` records the git commit, the options and the seed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use lm_scaling::api::{
    ApiClient, COURSE_BUDGET, LocalServer, LossOracle, PlanOptions, RunRecord, ServerConfig,
    SurfaceOracle, plan,
};
use lm_scaling::{Analysis, AnalysisOptions, Method, analyze, load_runs, report};

#[derive(Debug, Clone, clap::Args)]
pub struct Lab3Args {
    /// Run directory [default: runs/lab3-<unix time>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// FLOPs the experiments may spend (the course's budget).
    #[arg(long, default_value_t = COURSE_BUDGET)]
    pub budget: f64,
    /// Relative noise of the local server's losses.
    #[arg(long, default_value_t = 0.005)]
    pub noise: f64,
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// The course's runs [default: $LM_SHARED/cs336/a3/data/isoflops_curves.json].
    #[arg(long)]
    pub course_data: Option<PathBuf>,
}

pub fn run(args: &Lab3Args, unix_time: u64) -> Result<()> {
    let start = Instant::now();
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/lab3-{unix_time}")));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let course_data = args.course_data.clone().unwrap_or_else(|| {
        std::env::var_os("LM_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("../shared"))
            .join("cs336/a3/data/isoflops_curves.json")
    });
    let options = |predict: Vec<f64>| AnalysisOptions {
        predict_budgets: predict,
        bootstrap: args.bootstrap,
        seed: args.seed,
        ..Default::default()
    };
    let meta = serde_json::json!({
        "git_commit": lm_basics::train::checkpoint::git_commit(),
        "seed": args.seed,
        "budget": args.budget,
        "noise": args.noise,
        "bootstrap": args.bootstrap,
        "course_data": course_data,
    });
    lm_core::fsutil::write_atomic(
        &dir.join("run.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;

    println!(
        "== 1. the course's IsoFLOP runs ({})",
        course_data.display()
    );
    let runs = load_runs(&course_data)?;
    let course = analyze(&runs, &options(vec![1e23, 1e24]))?;
    report::write_all(&dir.join("course"), &runs, &course)?;
    print_predictions(&course);

    println!("\n== 2. plan → query the local training API → fit");
    let oracle = SurfaceOracle {
        noise: args.noise,
        seed: args.seed,
        ..Default::default()
    };
    let truth = oracle.surface;
    let server = LocalServer::start(ServerConfig {
        oracle: Arc::new(oracle.clone()),
        budget: args.budget,
        state_file: None,
    })?;
    let api_dir = dir.join("api");
    let mut client = ApiClient::new(
        &server.url(),
        "lab3",
        &api_dir.join("ledger.jsonl"),
        args.budget,
    )?;
    let the_plan = plan(&PlanOptions {
        total_budget: args.budget,
        ..Default::default()
    })?;
    lm_core::fsutil::write_atomic(
        &dir.join("plan.json"),
        serde_json::to_string_pretty(&the_plan)?.as_bytes(),
    )?;
    // The losses come from the ledger when this run directory already has them (a rerun:
    // free, and this process's fresh server would list none of them), else from the server.
    let (mut api_runs, mut from_ledger) = (Vec::new(), 0);
    for cfg in &the_plan.runs {
        let outcome = client.loss(cfg)?;
        from_ledger += usize::from(outcome.free);
        let record = RunRecord {
            config: *cfg,
            loss: outcome.loss,
        };
        api_runs.push(record.to_run());
    }
    println!(
        "server {} ({}): {} runs ({from_ledger} already in the ledger), {:.3e} of {:.3e} FLOPs (ledger {:.3e})",
        server.url(),
        oracle.describe(),
        api_runs.len(),
        client.total_flops_used()?,
        args.budget,
        client.ledger().used()
    );
    let fitted = analyze(&api_runs, &options(vec![1e19, 1e23, 1e24]))?;
    report::write_all(&api_dir, &api_runs, &fitted)?;
    print_predictions(&fitted);
    for c in [1e19, 1e23, 1e24] {
        let (n, d) = truth.optimum(c);
        println!(
            "  the server's true optimum at {c:.0e}: N = {n:.3e}, D = {d:.3e}, loss {:.4}",
            truth.loss(n, d)
        );
    }
    println!(
        "\nreports and plots in {}/{{course,api}}/ ({:.1} s)",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_predictions(a: &Analysis) {
    let iv = |e: &lm_scaling::analysis::Estimate| match e.interval {
        Some((lo, hi)) => format!("{:.3e} [{lo:.2e}, {hi:.2e}]", e.value),
        None => format!("{:.3e}", e.value),
    };
    for m in &a.methods {
        println!(
            "  {} — N_opt ∝ C^{:.4}",
            m.method.label(),
            m.n_exponent.value
        );
        for p in &m.predictions {
            let loss = match (m.method, p.loss) {
                (Method::LossSurface, Some(l)) => format!(", loss {:.4}", l.value),
                _ => String::new(),
            };
            println!(
                "    C = {:.0e}: N_opt = {}, D_opt = {}{loss}",
                p.budget,
                iv(&p.n_opt),
                iv(&p.d_opt)
            );
        }
    }
    for n in &a.notes {
        println!("  note: {n}");
    }
}
