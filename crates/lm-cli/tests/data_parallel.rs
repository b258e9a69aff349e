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

fn write_config(dir: &Path) -> String {
    let ids: Vec<u8> = (0..4000u32)
        .flat_map(|i| (((i * 7 + i / 13) % 61) as u16).to_le_bytes())
        .collect();
    std::fs::write(dir.join("train.bin"), &ids).unwrap();
    std::fs::write(dir.join("valid.bin"), &ids[..1200]).unwrap();
    let text = format!(
        r#"[model]
vocab_size = 64
context_length = 16
d_model = 32
num_layers = 2
num_heads = 2
d_ff = 64
[data]
train = "{0}/train.bin"
valid = "{0}/valid.bin"
[optimizer]
lr = 3e-3
min_lr = 3e-4
betas = [0.9, 0.95]
eps = 1e-8
weight_decay = 0.01
warmup_iters = 2
grad_clip = 1.0
[train]
steps = 5
batch_size = 4
eval_interval = 0
eval_batches = 2
checkpoint_interval = 0
seed = 3
backend = "ndarray"
"#,
        dir.display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn params(run: &Path) -> Vec<f32> {
    let cfg = TransformerConfig {
        vocab_size: 64,
        context_length: 16,
        d_model: 32,
        num_layers: 2,
        num_heads: 2,
        d_ff: 64,
        rope_theta: 10_000.0,
        eps: 1e-5,
        attention: Default::default(),
        precision: Default::default(),
    };
    let model = lm_core::TransformerLm::<NdArray>::new(&cfg, 0, &Default::default()).unwrap();
    flatten_params(&load_safetensors(model, &run.join("model.safetensors")).unwrap())
}

#[test]
fn two_processes_train_like_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let single = dir.path().join("single");
    let ddp = dir.path().join("ddp");
    let (ok, out) = lm(&[
        "train",
        "--config",
        &config,
        "--run-dir",
        single.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    for strategy in ["flat", "naive"] {
        let run = ddp.join(strategy);
        let (ok, out) = lm(&[
            "train",
            "--config",
            &config,
            "--run-dir",
            run.to_str().unwrap(),
            "--nproc-per-node",
            "2",
            "--set",
            &format!("train.ddp={strategy}"),
        ]);
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
    let (ok, out) = lm(&[
        "train",
        "--config",
        &config,
        "--run-dir",
        run.to_str().unwrap(),
        "--nproc-per-node",
        "3",
    ]);
    assert!(!ok);
    assert!(out.contains("does not divide over 3 ranks"), "{out}");
    assert!(out.contains("rank") && out.contains("failed"), "{out}");
}
