//! `lm train --nproc-per-node 2`: two processes over loopback TCP train the same model as
//! one process on the whole batch; a rank that fails stops the run with its name.

use std::path::Path;
use std::process::Command;

use lm_core::TransformerConfig;
use lm_core::backends::NdArray;
use lm_core::params::{flatten_params, load_safetensors};

fn lm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lm"))
        .args(args)
        .env_remove("WORLD_SIZE")
        .env_remove("MASTER_PORT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The trainer's tiny fixture (5 steps); returns the path of its config file.
/// `lm train --config <config> --run-dir <run> <extra…>`.
fn lm_train(config: &str, run: &Path, extra: &[&str]) -> (bool, String) {
    let run = run.to_str().unwrap();
    let mut args = vec!["train", "--config", config, "--run-dir", run];
    args.extend_from_slice(extra);
    lm(&args)
}

fn write_config(dir: &Path) -> String {
    lm_basics::train::fixture::tiny_run(dir, 5);
    dir.join("config.toml").display().to_string()
}

fn params(run: &Path) -> Vec<f32> {
    let cfg = TransformerConfig::new(64, 16, 32, 2, 2, 64);
    let model = lm_core::TransformerLm::<NdArray>::new(&cfg, 0, &Default::default()).unwrap();
    flatten_params(&load_safetensors(model, &run.join("model.safetensors")).unwrap())
}

#[test]
fn two_processes_train_like_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let single = dir.path().join("single");
    let ddp = dir.path().join("ddp");
    let (ok, out) = lm_train(&config, &single, &[]);
    assert!(ok, "{out}");
    for strategy in ["flat", "naive"] {
        let run = ddp.join(strategy);
        let ddp = format!("train.ddp={strategy}");
        let (ok, out) = lm_train(&config, &run, &["--nproc-per-node", "2", "--set", &ddp]);
        assert!(ok, "{strategy}: {out}");
        assert!(
            run.join("rank1/model.safetensors").exists(),
            "rank 1 writes its own directory"
        );
        let (want, got) = (params(&single), params(&run));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(
                (w - g).abs() <= 1e-5 + 1e-5 * w.abs(),
                "{strategy} value {i}: {w} vs {g}"
            );
        }
    }
}

#[test]
fn a_failing_rank_stops_the_run_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let run = dir.path().join("run");
    // A batch of 4 does not split over 3 ranks: every rank fails at startup.
    let (ok, out) = lm_train(&config, &run, &["--nproc-per-node", "3"]);
    assert!(!ok);
    assert!(out.contains("does not divide over 3 ranks"), "{out}");
    assert!(out.contains("rank") && out.contains("failed"), "{out}");
}
