//! The lab-5 pipeline at smoke size (`fixtures/configs/lab5-smoke.toml`): every stage runs
//! and leaves what the run directory promises. Learning itself is checked by tests/train.rs
//! and measured by the full config (docs/lab5-align.md).

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use lm_align::arith_lab::{LabConfig, run_lab};

type B = Autodiff<NdArray<f32>>;

fn smoke_config() -> LabConfig {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/configs/lab5-smoke.toml");
    LabConfig::from_toml_file(&path).unwrap()
}

fn lines(path: PathBuf) -> usize {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

#[test]
fn smoke_run_writes_every_stage_and_refuses_to_overwrite() {
    let config = smoke_config();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let report = run_lab::<B>(&config, &run, &Default::default(), true).unwrap();

    let stages: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["pretrained", "sft", "grpo"]);
    for s in &report.stages {
        assert!((0.0..=1.0).contains(&s.accuracy) && (0.0..=1.0).contains(&s.greedy_accuracy));
    }
    assert_eq!(report.held_out, config.eval.held_out);
    assert_eq!(
        lines(run.join("pretrain.metrics.jsonl")),
        config.pretrain.steps
    );
    assert_eq!(lines(run.join("sft.metrics.jsonl")), config.sft.steps);
    assert_eq!(
        lines(run.join("grpo.metrics.jsonl")),
        config.grpo.n_grpo_steps
    );
    for eval in ["pretrained", "sft-greedy", "grpo", "grpo-step1"] {
        assert_eq!(
            lines(run.join("eval").join(eval).join("records.jsonl")),
            config.eval.held_out
        );
    }
    // The resolved config reads back as the config that ran; the commit and seed are kept.
    let saved = LabConfig::from_toml_file(&run.join("config.toml")).unwrap();
    assert_eq!(saved, config);
    let info = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(
        info.contains("git_commit") && info.contains("\"seed\":0"),
        "{info}"
    );
    assert!(run.join("model.safetensors").exists());
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("| grpo |"), "{md}");

    let again = run_lab::<B>(&config, &run, &Default::default(), true).unwrap_err();
    assert!(
        again.to_string().contains("already holds a finished run"),
        "{again}"
    );
}

#[test]
fn a_task_too_small_for_the_counts_is_a_config_error() {
    let mut config = smoke_config();
    config.task.max_operand = 2;
    config.pretrain_problems = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let err =
        run_lab::<B>(&config, &dir.path().join("run"), &Default::default(), true).unwrap_err();
    assert!(err.to_string().contains("distinct"), "{err}");
}
