//! `lm scaling …` end to end: fit the course's runs; plan, serve, query through the ledger,
//! list the experiments and fit them — the lab-3 loop from the command line.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;

use common::lm;

fn course_runs() -> PathBuf {
    common::shared().join("cs336/a3/data/isoflops_curves.json")
}

#[test]
fn fit_the_course_runs_and_name_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fit");
    let runs = course_runs();
    let (ok, stdout, err) = lm(&[
        "scaling",
        "fit",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--bootstrap",
        "8",
    ]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("approach 3") && stdout.contains("1.000e24"),
        "{stdout}"
    );
    for f in [
        "report.md",
        "report.json",
        "runs.json",
        "run.json",
        "isoflops.png",
        "scaling_laws.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"parameters": 1e6, "compute_budget": 1e18}]"#).unwrap();
    let (ok, _, err) = lm(&["scaling", "fit", "--runs", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("bad.json") && err.contains("final_loss"),
        "{err}"
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn plan_serve_query_experiments_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_lm"))
            .args([
                "scaling",
                "serve",
                "--addr",
                &addr,
                "--budget",
                "2e17",
                "--state",
                &path("state.json"),
            ])
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{addr}");
    let client = [
        "--url",
        &url,
        "--api-key",
        "me",
        "--ledger",
        &path("ledger.jsonl"),
        "--budget",
        "2e17",
    ];

    let (ok, stdout, err) = lm(&[
        "scaling",
        "plan",
        "--budget",
        "2e17",
        "--levels",
        "4",
        "--sizes",
        "4",
        "--out",
        &path("plan.json"),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("16 runs"), "{stdout}");
    let (ok, stdout, err) = lm(&[
        &["scaling", "query", "--plan", &path("plan.json")][..],
        &client,
    ]
    .concat());
    assert!(ok, "{err}");
    assert_eq!(stdout.matches("loss").count(), 16, "{stdout}");
    // Again: everything comes from the ledger, nothing is spent.
    let (ok, stdout, _) = lm(&[
        &["scaling", "query", "--plan", &path("plan.json")][..],
        &client,
    ]
    .concat());
    assert!(ok && stdout.matches("free").count() == 16, "{stdout}");
    // A run the budget can't pay is refused, naming the budget.
    let one = [
        "--d-model",
        "1024",
        "--num-layers",
        "24",
        "--num-heads",
        "16",
        "--train-flops",
        "1e18",
    ];
    let (ok, _, err) = lm(&[&["scaling", "query"][..], &client, &one].concat());
    assert!(!ok && err.contains("over the budget"), "{err}");

    let (ok, _, err) = lm(&[
        &["scaling", "experiments", "--out", &path("runs.json")][..],
        &client,
    ]
    .concat());
    assert!(ok, "{err}");
    let (ok, stdout, err) = lm(&[
        "scaling",
        "fit",
        "--runs",
        &path("runs.json"),
        "--out",
        &path("fit"),
        "--bootstrap",
        "5",
        "--predict",
        "1e19",
    ]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("16 runs over 4 compute budgets"),
        "{stdout}"
    );
    let (ok, stdout, _) = lm(&[&["scaling", "budget"][..], &client].concat());
    assert!(
        ok && stdout.contains("server:") && stdout.contains("ledger:"),
        "{stdout}"
    );
}
