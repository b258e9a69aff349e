//! `lm train` as two data-parallel ranks (threads over loopback TCP) computes what one
//! process computes on the whole batch: the same parameters and the same logged losses.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use lm_basics::train::{TrainConfig, train, train_data_parallel};
use lm_core::TransformerLm;
use lm_core::backends::{NdArray, NdArrayAutodiff};
use lm_core::parallel::ParallelMode;
use lm_core::params::{flatten_params, load_safetensors};
use lm_systems::dist::{DistEnv, DistRank, TcpCommunicator};

/// The trainer's tiny fixture for 6 steps, evaluating and checkpointing every 3, logging
/// every 2.
fn config(dir: &Path) -> TrainConfig {
    let mut cfg = lm_basics::train::fixture::tiny_run(dir, 6);
    cfg.train.eval_interval = 3;
    cfg.train.checkpoint_interval = 3;
    cfg.train.log_interval = 2;
    cfg
}

fn params(cfg: &TrainConfig, run: &Path) -> Vec<f32> {
    let model = TransformerLm::<NdArray>::new(&cfg.model, 0, &Default::default()).unwrap();
    flatten_params(&load_safetensors(model, &run.join("model.safetensors")).unwrap())
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect()
}

#[test]
fn two_ranks_train_like_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let device = Default::default();
    let single = dir.path().join("single");
    train::<NdArrayAutodiff>(&cfg, &single, false, &device, false).unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ddp_dir = dir.path().join("ddp");
    std::thread::scope(|s| {
        for rank in 0..2 {
            let (cfg, ddp_dir) = (&cfg, &ddp_dir);
            s.spawn(move || {
                let env = DistEnv {
                    rank,
                    world_size: 2,
                    local_rank: rank,
                    master_addr: "127.0.0.1".into(),
                    master_port: port,
                    timeout: Duration::from_secs(30),
                };
                let comm = TcpCommunicator::connect(&env).unwrap();
                let run = if rank == 0 {
                    ddp_dir.clone()
                } else {
                    ddp_dir.join("rank1")
                };
                train_data_parallel::<NdArrayAutodiff>(
                    cfg,
                    &run,
                    false,
                    &Default::default(),
                    false,
                    Some(Box::new(DistRank::new(comm, ParallelMode::Flat))),
                )
                .unwrap();
            });
        }
    });

    let (want, got) = (params(&cfg, &single), params(&cfg, &ddp_dir));
    let rank1 = params(&cfg, &ddp_dir.join("rank1"));
    for (i, ((w, g), r1)) in want.iter().zip(&got).zip(&rank1).enumerate() {
        assert!(
            (w - g).abs() <= 1e-5 + 1e-5 * w.abs(),
            "value {i}: single {w}, ddp {g}"
        );
        assert_eq!(g, r1, "value {i}: the ranks' models differ");
    }
    let (want, got) = (losses(&single), losses(&ddp_dir));
    assert_eq!(want.len(), 6);
    for (w, g) in want.iter().zip(&got) {
        assert!(
            (w - g).abs() < 1e-5 * w.abs(),
            "logged loss {g} vs single-process {w}"
        );
    }
}
