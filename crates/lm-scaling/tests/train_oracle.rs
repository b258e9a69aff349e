//! The server backed by real training runs: the request's shape and learning rate are
//! trained for the (scaled) compute it asks for, so more compute gives a lower loss.

use std::sync::Arc;

use lm_core::backends::NdArrayAutodiff;
use lm_scaling::api::*;

#[test]
fn more_compute_trains_further() {
    let dir = tempfile::tempdir().unwrap();
    let base = lm_basics::train::fixture::tiny_run(dir.path(), 8);
    // 1e13 FLOPs on the smallest allowed model (98,304 parameters) × 1e-4 ≈ 26 steps of 64 tokens.
    let oracle = TrainingOracle::<NdArrayAutodiff>::new(
        base,
        1e-4,
        dir.path().join("runs"),
        Default::default(),
    );
    let small = RunConfig {
        d_model: 64,
        num_layers: 2,
        num_heads: 2,
        batch_size: 128,
        learning_rate: 1e-3,
        train_flops: 1e13 as u64,
    };
    let large = RunConfig {
        train_flops: 6e13 as u64,
        ..small
    };
    assert_eq!(oracle.run_config(&small).unwrap().train.steps, 26);
    assert_eq!(oracle.run_config(&large).unwrap().train.steps, 159);
    let huge = RunConfig {
        train_flops: 1e18 as u64,
        ..small
    };
    assert!(
        oracle
            .run_config(&huge)
            .unwrap_err()
            .to_string()
            .contains("lower the FLOP scale")
    );

    let srv = LocalServer::start(ServerConfig {
        oracle: Arc::new(oracle),
        budget: 1e14,
        state_file: None,
    })
    .unwrap();
    let mut client =
        ApiClient::new(&srv.url(), "k", &dir.path().join("ledger.jsonl"), 1e14).unwrap();
    let l_small = client.loss(&small).unwrap().loss;
    let l_large = client.loss(&large).unwrap().loss;
    assert!(
        l_large < l_small && l_small < (64f64).ln(),
        "{l_small} then {l_large}"
    );
    // Each run keeps its own directory with the config it trained.
    let runs = std::fs::read_dir(dir.path().join("runs")).unwrap().count();
    assert_eq!(runs, 2);
}
