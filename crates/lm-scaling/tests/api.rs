//! The training API end to end over loopback: the local server's budget rules, the client's
//! ledger, and the whole plan → query → fit loop.

use std::collections::BTreeSet;
use std::sync::Arc;

use lm_scaling::api::server::Submission;
use lm_scaling::api::*;
use lm_scaling::{AnalysisOptions, Method, ScalingError, analyze};

fn server(budget: f64, noise: f64, state_file: Option<std::path::PathBuf>) -> LocalServer {
    let oracle = SurfaceOracle {
        noise,
        ..SurfaceOracle::default()
    };
    LocalServer::start(ServerConfig {
        oracle: Arc::new(oracle),
        budget,
        state_file,
    })
    .unwrap()
}

fn run(d_model: usize, train_flops: f64) -> RunConfig {
    RunConfig {
        d_model,
        num_layers: 4,
        num_heads: 4,
        batch_size: 128,
        learning_rate: 6e-4,
        train_flops: train_flops as u64,
    }
}

#[test]
fn budget_rules_ledger_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("server.json");
    let srv = server(1e16, 0.0, Some(state.clone()));
    let ledger = dir.path().join("ledger.jsonl");
    let mut client = ApiClient::new(&srv.url(), "key-a", &ledger, 1e16).unwrap();

    let a = run(256, 1e15);
    let first = client.loss(&a).unwrap();
    assert!(!first.free);
    let want = SurfaceOracle {
        noise: 0.0,
        ..Default::default()
    }
    .loss(&a)
    .unwrap();
    assert_eq!(first.loss, want);
    assert_eq!(client.total_flops_used().unwrap(), 1e15);
    // Asked again: answered by the ledger, nothing spent anywhere.
    let again = client.loss(&a).unwrap();
    assert!(again.free && again.loss == first.loss);
    assert_eq!(client.total_flops_used().unwrap(), 1e15);
    assert_eq!(client.ledger().used(), 1e15);

    // A second machine (fresh ledger, same key): the server answers 409 with the loss, free.
    let mut other =
        ApiClient::new(&srv.url(), "key-a", &dir.path().join("l2.jsonl"), 1e16).unwrap();
    let dup = other.loss(&a).unwrap();
    assert!(dup.free && dup.loss == first.loss);
    assert_eq!(other.ledger().used(), 0.0);

    // The client refuses before sending what its own budget can't pay...
    let mut small =
        ApiClient::new(&srv.url(), "key-b", &dir.path().join("l3.jsonl"), 2e15).unwrap();
    small.loss(&run(256, 1e15)).unwrap();
    let e = small.loss(&run(256, 3e15)).unwrap_err();
    assert!(matches!(e, ScalingError::Budget(_)), "{e}");
    assert_eq!(small.previous_runs().unwrap().len(), 1);
    // ...and the server refuses with 400 what the key's budget can't.
    let mut eager =
        ApiClient::new(&srv.url(), "key-c", &dir.path().join("l4.jsonl"), 1e18).unwrap();
    eager.loss(&run(256, 6e15)).unwrap();
    let e = eager.loss(&run(320, 6e15)).unwrap_err().to_string();
    assert!(
        e.contains("HTTP 400") && e.contains("over budget") && !e.contains("key-c"),
        "{e}"
    );
    assert_eq!(eager.ledger().used(), 6e15);
    assert_eq!(eager.ledger().entries().last().unwrap().flops_charged, 0.0);

    // Malformed requests: the client names the field; the server answers 422 / 401.
    let e = client
        .loss(&RunConfig { num_heads: 3, ..a })
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_heads"), "{e}");
    let status = |url: String| match ureq::get(&url).call() {
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        other => panic!("{url}: {other:?}"),
    };
    let (code, body) = status(format!(
        "{}/loss?api_key=k&d_model=256&num_layers=4&num_heads=4&batch_size=128&learning_rate=6e-4",
        srv.url()
    ));
    assert!(code == 422 && body.contains("train_flops"), "{code} {body}");
    assert_eq!(status(format!("{}/previous_runs", srv.url())).0, 401);

    // One final submission per key.
    let sub = Submission {
        compute_budget: 1e19,
        parameters: 1e9,
        tokens: 2e10,
        predicted_loss: Some(2.9),
    };
    client.submit(&sub).unwrap();
    assert!(client.submit(&sub).unwrap_err().to_string().contains("409"));

    // Budgets and runs survive a server restart; the ledger survives reopening.
    drop(srv);
    let srv = server(1e16, 0.0, Some(state));
    let client = ApiClient::new(&srv.url(), "key-a", &ledger, 1e16).unwrap();
    assert_eq!(client.previous_runs().unwrap().len(), 1);
    assert_eq!(client.total_flops_used().unwrap(), 1e15);
    assert_eq!(client.ledger().entries().len(), 1);
}

#[test]
fn plan_query_fit_recovers_the_servers_law() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(COURSE_BUDGET, 0.0, None);
    let mut client = ApiClient::new(
        &srv.url(),
        "k",
        &dir.path().join("ledger.jsonl"),
        COURSE_BUDGET,
    )
    .unwrap();
    let p = plan(&PlanOptions::default()).unwrap();
    for cfg in &p.runs {
        client.loss(cfg).unwrap();
    }
    assert!(client.ledger().used() <= COURSE_BUDGET);
    let records = client.previous_runs().unwrap();
    assert_eq!(records.len(), p.runs.len());
    let runs: Vec<_> = records.iter().map(|r| r.to_run()).collect();
    let budgets: BTreeSet<u64> = p.runs.iter().map(|r| r.train_flops).collect();
    assert_eq!(budgets.len(), 6);
    let opts = AnalysisOptions {
        bootstrap: 10,
        predict_budgets: vec![1e19],
        ..Default::default()
    };
    let a = analyze(&runs, &opts).unwrap();
    let truth = SurfaceOracle::default().surface;
    let fit = a
        .methods
        .iter()
        .find(|m| m.method == Method::LossSurface)
        .unwrap();
    assert!(
        (fit.n_exponent.value - truth.n_exponent()).abs() < 1e-3,
        "{fit:?}"
    );
    let (n, _) = truth.optimum(1e19);
    assert!(
        (fit.predictions[0].n_opt.value / n - 1.0).abs() < 1e-2,
        "{fit:?} vs {n}"
    );
}

/// The surface, slowed down, failing for d_model 128 (to see queued jobs and refunds).
struct SlowOracle;

impl LossOracle for SlowOracle {
    fn loss(&self, c: &RunConfig) -> lm_scaling::Result<f64> {
        std::thread::sleep(std::time::Duration::from_millis(150));
        if c.d_model == 128 {
            return Err(ScalingError::Fit("injected failure".into()));
        }
        SurfaceOracle {
            noise: 0.0,
            ..Default::default()
        }
        .loss(c)
    }

    fn describe(&self) -> String {
        "slow surface".into()
    }
}

#[test]
fn jobs_are_polled_charged_on_success_and_refunded_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let srv = LocalServer::start(ServerConfig {
        oracle: Arc::new(SlowOracle),
        budget: 1.5e15,
        state_file: None,
    })
    .unwrap();
    let mut client =
        ApiClient::new(&srv.url(), "k", &dir.path().join("ledger.jsonl"), 1e16).unwrap();
    let a = run(256, 1e15);
    let Submitted::Job(job) = client.submit_job(&a).unwrap() else {
        panic!("expected a job")
    };
    assert!(matches!(
        client.poll(&job).unwrap(),
        JobStatus::Queued | JobStatus::Running
    ));
    // Another client with the same key follows the same job instead of paying twice.
    let mut twin = ApiClient::new(&srv.url(), "k", &dir.path().join("twin.jsonl"), 1e16).unwrap();
    assert_eq!(twin.submit_job(&a).unwrap(), Submitted::Job(job));
    assert_eq!(twin.ledger().used(), 0.0);
    // Reserved FLOPs count against the server's budget before the job finishes.
    let e = twin.submit_job(&run(320, 1e15)).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("reserved"), "{e}");

    let done = client
        .wait(&job, std::time::Duration::from_millis(20))
        .unwrap();
    let want = SurfaceOracle {
        noise: 0.0,
        ..Default::default()
    }
    .loss(&a)
    .unwrap();
    assert_eq!(done.loss, want);
    assert_eq!(client.total_flops_used().unwrap(), 1e15);
    assert_eq!(client.ledger().used(), 1e15);
    assert_eq!(client.ledger().known_loss(&a), Some(want));
    assert!(
        matches!(client.submit_job(&a).unwrap(), Submitted::Known(o) if o.free && o.loss == want)
    );

    // A failing job: the server charges nothing, the ledger refunds what it charged.
    let b = run(128, 3e14);
    let Submitted::Job(failing) = client.submit_job(&b).unwrap() else {
        panic!("expected a job")
    };
    assert_eq!(client.ledger().used(), 1e15 + 3e14);
    let e = client
        .wait(&failing, std::time::Duration::from_millis(20))
        .unwrap_err()
        .to_string();
    assert!(e.contains("injected failure"), "{e}");
    assert_eq!(client.ledger().used(), 1e15);
    client.poll(&failing).unwrap();
    assert_eq!(client.ledger().used(), 1e15, "a refund is recorded once");
    assert_eq!(client.total_flops_used().unwrap(), 1e15);
    // Jobs are private to their key.
    let other = ApiClient::new(&srv.url(), "other", &dir.path().join("o.jsonl"), 1e16).unwrap();
    let mut other = other;
    assert!(other.poll(&job).unwrap_err().to_string().contains("404"));
}
