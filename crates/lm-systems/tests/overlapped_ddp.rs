//! DDP with the all-reduces overlapped with the backward: the same training as one process
//! on the global batch, all-reduces that start while the backward is still running, and
//! tied weights that get their whole gradient.

mod common;

use std::time::Duration;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use lm_core::backends::{NdArray, NdArrayAutodiff};
use lm_core::functional::cross_entropy;
use lm_core::parallel::ParallelMode;
use lm_core::params::{NamedTensors, named_grads, named_params, to_f32_vec};
use lm_core::{TransformerConfig, TransformerLm};
use lm_systems::dist::DistError;
use lm_systems::dist::ddp::local_rows;
use lm_systems::dist::overlap::{OverlapStats, OverlappedDdp};
use lm_systems::dist::staged::{StageParams, forward_in_stages};

/// ~300 values a bucket: several buckets, some parameters alone.
const BUCKETS: [Option<f64>; 2] = [None, Some(0.0012)];

#[test]
fn overlapped_ddp_trains_like_one_process_on_the_global_batch() {
    // A loose limit never clips; a tight one clips every step with the global norm.
    for max_norm in [1e6, 0.05] {
        let reference = single_process(max_norm);
        for world in [2, 4] {
            for bucket in BUCKETS {
                let what =
                    format!("overlapped, buckets {bucket:?}, {world} ranks, max_norm {max_norm}");
                let mode = ParallelMode::Overlapped {
                    bucket_size_mb: bucket,
                };
                assert_same_training(&reference, &train_ranks(world, mode, max_norm), &what);
            }
        }
    }
}

/// Leaves every parameter as it is.
struct Unchanged;

impl StageParams<NdArrayAutodiff> for Unchanged {
    fn param<const D: usize>(
        &mut self,
        _: &str,
        tensor: Tensor<NdArrayAutodiff, D>,
        _: Option<&Tensor<NdArrayAutodiff, 3>>,
    ) -> Result<Tensor<NdArrayAutodiff, D>, DistError> {
        Ok(tensor)
    }
}

#[test]
fn staged_forward_is_the_model_forward() {
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    let (x, _) = batch(0, 0..4);
    let want = model.forward(x.clone()).into_data();
    let got = forward_in_stages(&model, x, &mut Unchanged)
        .unwrap()
        .into_data();
    assert_eq!(want, got);
    let (long, _) = batch(0, 0..1);
    let long = Tensor::cat(vec![long; 2], 1); // 20 positions, context 12
    let err = forward_in_stages(&model, long, &mut Unchanged).unwrap_err();
    assert!(err.to_string().contains("context_length = 12"), "{err}");
}

/// One overlapped step's averaged gradients on every rank, each rank with its copy of the
/// model made by `model_of_rank`.
fn averaged(
    model_of_rank: impl Fn() -> TransformerLm<NdArrayAutodiff> + Sync,
    world: usize,
    bucket: Option<f64>,
    rows_per_rank: impl Fn(usize) -> std::ops::Range<usize> + Sync,
) -> Vec<(NamedTensors<NdArray>, OverlapStats)> {
    on_ranks(world, |rank, comm| {
        let model = model_of_rank();
        let mut ddp = OverlappedDdp::new(comm, bucket);
        let (x, y) = batch(0, rows_per_rank(rank));
        let loss = cross_entropy(ddp.forward(&model, x).unwrap(), y);
        let mut grads = named_grads(&model, &loss.backward());
        let stats = ddp.average_gradients(&mut grads).unwrap();
        (grads, stats)
    })
}

fn global_grads(model: &TransformerLm<NdArrayAutodiff>) -> NamedTensors<NdArray> {
    let (x, y) = batch(0, 0..GLOBAL_BATCH);
    named_grads(model, &cross_entropy(model.forward(x), y).backward())
}

fn assert_same_grads(got: &NamedTensors<NdArray>, want: &NamedTensors<NdArray>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, g) in got {
        let (g, w) = (to_f32_vec(&g.values), to_f32_vec(&want[name].values));
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                "{name}[{i}]: {a} vs {b}"
            );
        }
    }
}

#[test]
fn averaged_gradients_are_the_global_batch_gradient() {
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    let params = named_params(&model);
    let reference = global_grads(&model);
    for world in [2, 4] {
        for bucket in BUCKETS {
            let rows = |rank| local_rows(GLOBAL_BATCH, rank, world).unwrap();
            let copies = || rank_copy(&model);
            for (grads, stats) in averaged(copies, world, bucket, rows) {
                assert_same_grads(&grads, &reference);
                let total: usize = params.values().map(|p| p.numel()).sum();
                assert_eq!(stats.values, total, "every value sent once");
                assert_eq!(stats.gradients, params.len());
                match bucket {
                    None => assert_eq!(stats.collectives, params.len()),
                    Some(_) => assert!(
                        stats.collectives > 1 && stats.collectives < params.len(),
                        "{stats:?}"
                    ),
                }
            }
        }
    }
}

/// The head reuses the embedding matrix (one tensor, two uses): its hook must sit before
/// both uses and see the sum of their gradients.
#[test]
fn tied_weights_are_averaged_whole() {
    let tie = |mut model: TransformerLm<NdArrayAutodiff>| {
        model.lm_head.weight = model.token_embeddings.weight.clone();
        model
    };
    let model = tie(TransformerLm::new(&tiny(), 1, &Default::default()).unwrap());
    let reference = global_grads(&model);
    let rows = |rank| local_rows(GLOBAL_BATCH, rank, 2).unwrap();
    for (grads, stats) in averaged(|| tie(rank_copy(&model)), 2, None, rows) {
        assert_same_grads(&grads, &reference);
        assert_eq!(
            stats.gradients,
            named_params(&model).len() - 1,
            "one hook for the pair"
        );
    }
}

/// A model whose backward takes long enough (tens of milliseconds) that the hooks of the
/// upper layers fire, and their all-reduces start, while the lower layers' backward runs.
#[test]
fn all_reduces_start_while_the_backward_runs() {
    let cfg = TransformerConfig::new(48, 64, 64, 6, 4, 128);
    let model = TransformerLm::<NdArrayAutodiff>::new(&cfg, 1, &Default::default()).unwrap();
    let hooked = named_params(&model).len();
    for bucket in BUCKETS {
        let per_rank = on_ranks(2, |rank, comm| {
            let model = rank_copy(&model);
            let mut ddp = OverlappedDdp::new(comm, bucket);
            let tokens: Vec<i64> = (0..8 * 65)
                .map(|i| ((i * 7 + rank * 3) % 48) as i64)
                .collect();
            let ids = Tensor::<NdArrayAutodiff, 2, Int>::from_data(
                TensorData::new(tokens, [8, 65]),
                &Default::default(),
            );
            let (x, y) = (ids.clone().slice([0..8, 0..64]), ids.slice([0..8, 1..65]));
            let loss = cross_entropy(ddp.forward(&model, x).unwrap(), y);
            let mut grads = named_grads(&model, &loss.backward());
            ddp.average_gradients(&mut grads).unwrap()
        });
        for stats in per_rank {
            assert_eq!(stats.gradients, hooked);
            // The head's hook fires after about a seventh of the backward; hooks placed at
            // the end of the backward (as without anchors) would fire after nearly all of it.
            assert!(
                stats.first_gradient.as_secs_f64() < 0.5 * stats.backward.as_secs_f64(),
                "buckets {bucket:?}: {stats:?}"
            );
            // The communication thread started on it while the backward went on.
            assert!(
                stats.overlapped > Duration::ZERO,
                "buckets {bucket:?}: {stats:?}"
            );
        }
    }
}

#[test]
fn steps_out_of_order_are_errors() {
    let results = on_ranks(1, |_, comm| {
        let mut ddp = OverlappedDdp::new(comm, None);
        let mut grads = NamedTensors::<NdArray>::new();
        let early = ddp.average_gradients(&mut grads).unwrap_err().to_string();
        let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
        let (x, _) = batch(0, 0..2);
        // A failed forward leaves the communicator usable.
        let long = Tensor::cat(vec![x.clone(); 7], 1);
        let too_long = ddp.forward(&model, long).unwrap_err().to_string();
        let _logits = ddp.forward(&model, x.clone()).unwrap();
        let twice = ddp.forward(&model, x).unwrap_err().to_string();
        (early, too_long, twice)
    });
    let (early, too_long, twice) = &results[0];
    assert!(early.contains("without a forward"), "{early}");
    assert!(too_long.contains("context_length"), "{too_long}");
    assert!(
        twice.contains("average_gradients was not called"),
        "{twice}"
    );
}
