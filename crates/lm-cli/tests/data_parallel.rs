//! `lm train --nproc-per-node 2`: two processes over loopback TCP train the same model as
//! one process on the whole batch, under every `train.ddp`, also across a resume of sharded
//! state; a rank that fails stops the run with its name.

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

/// Asserts that `run`'s model is `single`'s, up to float summation order.
fn assert_same_model(single: &Path, run: &Path, what: &str) {
    let (want, got) = (params(single), params(run));
    assert_eq!(want.len(), got.len(), "{what}");
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert!(
            (w - g).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what} value {i}: {w} vs {g}"
        );
    }
}

/// Trains the fixture in one process, then on 2 ranks under each `train.ddp` setting (each
/// a list of `--set` assignments), and checks that every run gives the single process's
/// model.
fn two_processes_match_one(variants: &[&[&str]]) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let single = dir.path().join("single");
    let (ok, out) = lm_train(&config, &single, &[]);
    assert!(ok, "{out}");
    for (i, sets) in variants.iter().enumerate() {
        let run = dir.path().join(format!("ddp{i}"));
        let mut args = vec!["--nproc-per-node", "2"];
        for set in *sets {
            args.extend(["--set", set]);
        }
        let (ok, out) = lm_train(&config, &run, &args);
        assert!(ok, "{sets:?}: {out}");
        assert!(
            run.join("rank1/model.safetensors").exists(),
            "rank 1 writes its own directory"
        );
        assert_same_model(&single, &run, &format!("{sets:?}"));
    }
}

#[test]
fn two_processes_train_like_one() {
    two_processes_match_one(&[&["train.ddp=flat"], &["train.ddp=naive"]]);
}

#[test]
fn overlapped_zero1_and_fsdp_train_like_one() {
    two_processes_match_one(&[
        &["train.ddp=overlapped"],
        // Buckets of 4000 values: several per step, some holding several gradients.
        &["train.ddp=overlapped", "train.bucket_size_mb=0.016"],
        &["train.ddp=zero1"],
        &["train.ddp=fsdp"],
    ]);
}

#[test]
fn sharded_runs_resume_with_the_same_ranks_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let single = dir.path().join("single");
    let (ok, out) = lm_train(&config, &single, &[]);
    assert!(ok, "{out}");
    // The full run's schedule (a cosine over 5 steps) in both halves.
    let cosine = "optimizer.cosine_cycle_iters=5";
    let two = ["--nproc-per-node", "2", "--set", cosine, "--set"];
    for ddp in ["train.ddp=fsdp", "train.ddp=zero1"] {
        let run = dir.path().join(ddp);
        let first = [&two[..], &[ddp, "--set", "train.steps=3"]].concat();
        let (ok, out) = lm_train(&config, &run, &first);
        assert!(ok, "{ddp}, steps 1-3: {out}");
        // One process cannot continue the ranks' optimizer shards.
        let (ok, out) = lm_train(&config, &run, &["--resume", "--set", cosine, "--set", ddp]);
        assert!(!ok && out.contains("train.ddp"), "{ddp}: {out}");
        let (ok, out) = lm_train(&config, &run, &[&two[..], &[ddp, "--resume"]].concat());
        assert!(ok, "{ddp}, steps 4-5: {out}");
        assert_same_model(&single, &run, ddp);
    }
}

#[test]
fn an_unknown_ddp_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let run = dir.path().join("run");
    let (ok, out) = lm_train(&config, &run, &["--set", "train.ddp=zero3"]);
    assert!(!ok);
    assert!(
        out.contains("train.ddp") && out.contains("zero3") && out.contains("fsdp"),
        "{out}"
    );
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
