//! FSDP: the same training as one process on the global batch, with each rank holding about
//! 1/N of the weight matrices and their optimizer state.

mod common;

use burn::tensor::DType;
use common::*;
use lm_core::TransformerLm;
use lm_core::backends::NdArrayAutodiff;
use lm_core::functional::cross_entropy;
use lm_core::params::{flatten_params, named_params};
use lm_systems::dist::ddp::local_rows;
use lm_systems::dist::fsdp::Fsdp;

/// Every rank's final (all-gathered) parameters and resident f32 values, with the matrix
/// products computed in `compute`.
fn fsdp(world: usize, max_norm: f64, compute: DType) -> Vec<(Vec<f32>, usize)> {
    on_ranks(world, |rank, comm| {
        // Different seeds: the broadcast from rank 0 must fix that.
        let model = TransformerLm::<NdArrayAutodiff>::new(
            &tiny(),
            1 + rank as u64 * 100,
            &Default::default(),
        )
        .unwrap()
        .with_compute_dtype(compute);
        let mut fsdp = Fsdp::new(model, comm, config()).unwrap();
        let rows = local_rows(GLOBAL_BATCH, rank, world).unwrap();
        for step in 0..STEPS {
            let (x, y) = batch(step, rows.clone());
            let loss = cross_entropy(fsdp.forward(x).unwrap(), y);
            fsdp.step(&loss.backward(), 1e-2, Some(max_norm)).unwrap();
        }
        let full = fsdp.full_model().unwrap();
        (flatten_params(&full), fsdp.resident_values())
    })
}

#[test]
fn fsdp_trains_like_one_process_on_the_global_batch() {
    for max_norm in [1e6, 0.05] {
        let reference = single_process(max_norm);
        // 3 ranks: some weights do not split evenly (padded shards).
        for world in [2, 3, 4] {
            let params: Vec<Vec<f32>> = fsdp(world, max_norm, DType::F32)
                .into_iter()
                .map(|r| r.0)
                .collect();
            let what = format!("FSDP on {world} ranks, max_norm {max_norm}");
            assert_same_training(&reference, &params, &what);
        }
    }
}

/// The model's mixed precision composes with the f32 master shards: the gathered f32
/// weights are cast for the products and the gradients come back in f32. (ndarray has no
/// bf16: f64 stands in for the compute dtype, as in lm-core's precision tests.)
#[test]
fn fsdp_with_another_compute_dtype_trains_like_one_process() {
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    let reference = train_single(model.with_compute_dtype(DType::F64), 0.05);
    let params: Vec<Vec<f32>> = fsdp(2, 0.05, DType::F64).into_iter().map(|r| r.0).collect();
    assert_same_training(&reference, &params, "FSDP on 2 ranks, f64 products");
}

/// A rank keeps weights + two AdamW moments of its shards (1/N of each matrix, rounded up)
/// and of the replicated gains: about 1/N of what one process keeps.
#[test]
fn fsdp_keeps_a_shard_of_the_weights_and_their_state() {
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    let params = named_params(&model);
    let matrices: Vec<usize> = params
        .values()
        .filter(|p| p.shape.len() == 2)
        .map(|p| p.numel())
        .collect();
    let sharded: usize = matrices.iter().sum();
    let replicated: usize = params.values().map(|p| p.numel()).sum::<usize>() - sharded;
    for world in [2, 4] {
        let expected = 3 * (matrices.iter().map(|n| n.div_ceil(world)).sum::<usize>() + replicated);
        for (rank, (_, resident)) in fsdp(world, 1e6, DType::F32).into_iter().enumerate() {
            assert_eq!(resident, expected, "rank {rank} of {world}");
            let single = 3 * (sharded + replicated);
            let share = resident as f64 / single as f64;
            let ideal =
                (sharded as f64 / world as f64 + replicated as f64) / (sharded + replicated) as f64;
            assert!(
                share <= ideal * 1.01,
                "{world} ranks: a rank keeps {share:.3} of one process's values (ideal {ideal:.3})"
            );
        }
    }
}

#[test]
fn a_step_without_a_forward_is_an_error() {
    let errors = on_ranks(1, |_, comm| {
        let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
        let mut fsdp = Fsdp::new(model, comm, config()).unwrap();
        let (x, y) = batch(0, 0..2);
        // A loss not computed through fsdp.forward.
        let other = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
        let grads = cross_entropy(other.forward(x), y).backward();
        fsdp.step(&grads, 1e-2, None).unwrap_err().to_string()
    });
    assert!(errors[0].contains("without a forward"), "{}", errors[0]);
}
