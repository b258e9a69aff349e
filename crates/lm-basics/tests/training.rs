//! The training pipeline: the course's test_data.py (get_batch) and test_serialization.py
//! (checkpoint round trip) ported, plus resume bit-identity, loss that drops, bad input.

use std::path::{Path, PathBuf};

use lm_basics::data::{TokenFile, get_batch, sequential_batches};
use lm_basics::tokenizer::encode_file::TokenDtype;
use lm_basics::train::checkpoint;
use lm_basics::train::{TrainConfig, train};
use lm_core::backends::{NdArray, NdArrayAutodiff};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn write_tokens(path: &Path, ids: &[u16]) {
    lm_basics::train::fixture::write_tokens(path, ids).unwrap();
}

#[test]
fn test_get_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seq.bin");
    write_tokens(&path, &(0..100).collect::<Vec<u16>>());
    let data = TokenFile::open(&path, TokenDtype::U16).unwrap();
    let (batch, context) = (32, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut starts = std::collections::BTreeMap::new();
    for _ in 0..1000 {
        let (x, y) =
            get_batch::<NdArray>(&data, batch, context, &mut rng, &Default::default()).unwrap();
        assert_eq!(x.dims(), [batch, context]);
        assert_eq!(y.dims(), [batch, context]);
        let xs: Vec<i64> = x.into_data().convert::<i64>().to_vec().unwrap();
        let ys: Vec<i64> = y.into_data().convert::<i64>().to_vec().unwrap();
        assert!(xs.iter().zip(&ys).all(|(a, b)| a + 1 == *b), "y = x + 1");
        for row in xs.chunks(context) {
            *starts.entry(row[0]).or_insert(0usize) += 1;
        }
    }
    // Starts cover exactly 0 ..= 100 − 7 − 1, each about uniformly (within 5 std devs).
    assert_eq!(
        starts.keys().copied().collect::<Vec<_>>(),
        (0..=92).collect::<Vec<i64>>()
    );
    let n = 1000.0 * batch as f64;
    let p = 1.0 / 93.0;
    let (mean, sd) = (n * p, (n * p * (1.0 - p)).sqrt());
    for (s, c) in starts {
        assert!(
            (c as f64 - mean).abs() < 5.0 * sd,
            "start {s}: {c} draws, expected {mean:.0} ± {sd:.0}"
        );
    }
}

#[test]
fn sequential_batches_cover_the_file_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seq.bin");
    write_tokens(&path, &(0..50).collect::<Vec<u16>>());
    let data = TokenFile::open(&path, TokenDtype::U16).unwrap();
    let xs: Vec<i64> = sequential_batches::<NdArray>(&data, 3, 8, &Default::default())
        .flat_map(|(x, _)| x.into_data().convert::<i64>().to_vec::<i64>().unwrap())
        .collect();
    assert_eq!(
        xs,
        (0..48).collect::<Vec<i64>>(),
        "6 windows of 8, the tail dropped"
    );
}

fn tiny_config(dir: &Path, steps: u64) -> TrainConfig {
    lm_basics::train::fixture::tiny_run(dir, steps)
}

fn model_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model.safetensors")).unwrap()
}

#[test]
fn resume_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let full = tiny_config(dir.path(), 8);
    let straight = dir.path().join("straight");
    let split = dir.path().join("split");
    let half = TrainConfig {
        train: lm_basics::train::config::LoopConfig {
            steps: 4,
            ..full.train.clone()
        },
        ..full.clone()
    };
    // Same schedule: the cosine must end at the full run's step count in both halves.
    let half = TrainConfig {
        optimizer: lm_basics::train::config::OptimizerConfig {
            cosine_cycle_iters: 8,
            ..half.optimizer
        },
        ..half
    };
    let full = TrainConfig {
        optimizer: half.optimizer.clone(),
        ..full
    };
    train::<NdArrayAutodiff>(&full, &straight, false, &device, false).unwrap();
    train::<NdArrayAutodiff>(&half, &split, false, &device, false).unwrap();
    train::<NdArrayAutodiff>(&full, &split, true, &device, false).unwrap();
    assert_eq!(
        model_bytes(&straight),
        model_bytes(&split),
        "N steps ≠ N/2 + resume + N/2"
    );

    // The metrics of the resumed run continue at step 5.
    let metrics = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
}

/// The course's test_serialization: model, optimizer state and iteration round-trip.
#[test]
fn test_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let cfg = tiny_config(dir.path(), 4);
    let run = dir.path().join("run");
    train::<NdArrayAutodiff>(&cfg, &run, false, &device, false).unwrap();
    let (model, opt, state) =
        checkpoint::load::<NdArrayAutodiff>(&run.join("checkpoint.safetensors"), &device).unwrap();
    assert_eq!(state.step, 4);
    assert_eq!(opt.step, 4);
    assert_eq!(state.config, cfg);
    assert_eq!(opt.moments.len(), 21, "moments for every parameter");
    let again = dir.path().join("again.safetensors");
    checkpoint::save(&again, &model, &opt, &state).unwrap();
    let (model2, opt2, state2) = checkpoint::load::<NdArrayAutodiff>(&again, &device).unwrap();
    let values = |m: &lm_core::TransformerLm<NdArrayAutodiff>| {
        lm_core::params::named_params(m)
            .into_iter()
            .map(|(n, t)| (n, t.values.into_data().to_vec::<f32>().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&model), values(&model2));
    for (name, m) in &opt.moments {
        let m2 = &opt2.moments[name];
        assert_eq!(
            m.m.clone().into_data().to_vec::<f32>().unwrap(),
            m2.m.clone().into_data().to_vec::<f32>().unwrap()
        );
        assert_eq!(
            m.v.clone().into_data().to_vec::<f32>().unwrap(),
            m2.v.clone().into_data().to_vec::<f32>().unwrap()
        );
    }
    assert_eq!(
        serde_json::to_string(&state.rng).unwrap(),
        serde_json::to_string(&state2.rng).unwrap()
    );
    for f in [
        "config.toml",
        "run.json",
        "metrics.jsonl",
        "model.safetensors",
        "loss_curve.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing from the run directory");
    }
    let run_json = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(
        run_json.contains("git_commit") && run_json.contains("\"seed\": 3"),
        "{run_json}"
    );
}

#[test]
fn loss_drops_on_a_learnable_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(dir.path(), 60);
    cfg.train.eval_interval = 0;
    cfg.train.checkpoint_interval = 0;
    let run = dir.path().join("run");
    let out = train::<NdArrayAutodiff>(&cfg, &run, false, &Default::default(), false).unwrap();
    let first: f64 = {
        let line = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        serde_json::from_str::<serde_json::Value>(line.lines().next().unwrap()).unwrap()["loss"]
            .as_f64()
            .unwrap()
    };
    assert!(
        first > 3.5,
        "initial loss {first} should be near ln 64 = 4.16"
    );
    assert!(
        out.eval_loss.unwrap() < 1.5,
        "validation loss {:?} after 60 steps",
        out.eval_loss
    );
}

#[test]
fn bad_data_and_diverging_runs_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let mut cfg = tiny_config(dir.path(), 4);
    cfg.model.vocab_size = 32; // the files hold ids up to 60
    let err = train::<NdArrayAutodiff>(&cfg, &dir.path().join("r1"), false, &device, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.bin") && err.contains("vocab_size 32"),
        "{err}"
    );

    let mut cfg = tiny_config(dir.path(), 8);
    cfg.optimizer.lr = 1e30;
    cfg.optimizer.min_lr = 1e30;
    cfg.optimizer.grad_clip = 0.0;
    cfg.train.checkpoint_interval = 1;
    let run = dir.path().join("r2");
    let err = train::<NdArrayAutodiff>(&cfg, &run, false, &device, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loss is") && err.contains("checkpoint"),
        "{err}"
    );
    // The last checkpoint is the last good one and loads.
    let (_, _, state) =
        checkpoint::load::<NdArrayAutodiff>(&run.join("checkpoint.safetensors"), &device).unwrap();
    assert!(state.step >= 1);
    // A fresh (non-resume) run refuses to overwrite it.
    let err = train::<NdArrayAutodiff>(&cfg, &run, false, &device, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already holds a run"), "{err}");

    let missing = PathBuf::from("/no/such/train.bin");
    let mut cfg = tiny_config(dir.path(), 4);
    cfg.data.train = missing;
    let err = train::<NdArrayAutodiff>(&cfg, &dir.path().join("r3"), false, &device, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/train.bin"), "{err}");
}

#[test]
fn time_limit_stops_with_a_checkpoint_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let mut cfg = tiny_config(dir.path(), 40);
    cfg.train.max_seconds = Some(1e-9);
    let run = dir.path().join("run");
    let out = train::<NdArrayAutodiff>(&cfg, &run, false, &device, false).unwrap();
    assert_eq!(out.steps, 1, "stops after the first step");
    let (_, _, state) =
        checkpoint::load::<NdArrayAutodiff>(&run.join("checkpoint.safetensors"), &device).unwrap();
    assert_eq!(state.step, 1);
    cfg.train.max_seconds = None;
    let out = train::<NdArrayAutodiff>(&cfg, &run, true, &device, false).unwrap();
    assert_eq!(out.steps, 39);
}

/// Deferred read-backs change when figures reach the host, not what is computed: every step
/// is still logged in order, and the trained parameters equal those of a run reading back
/// every step. The phase profile covers the requested steps.
#[test]
fn batched_read_back_logs_every_step_and_profile_reports_phases() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let mut cfg = tiny_config(dir.path(), 20);
    cfg.train.log_interval = 1;
    let every_step = dir.path().join("every");
    train::<NdArrayAutodiff>(&cfg, &every_step, false, &device, false).unwrap();
    cfg.train.log_interval = 7;
    cfg.train.profile_steps = 5;
    let batched = dir.path().join("batched");
    train::<NdArrayAutodiff>(&cfg, &batched, false, &device, false).unwrap();
    assert!(model_bytes(&every_step) == model_bytes(&batched));

    let steps: Vec<u64> = std::fs::read_to_string(batched.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("loss").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=20).collect::<Vec<_>>());

    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(batched.join("profile.json")).unwrap())
            .unwrap();
    assert_eq!(profile["steps"], 5);
    let phases = profile["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 4);
    let share: f64 = phases.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9 && profile["ms_per_step"].as_f64().unwrap() > 0.0);
}
