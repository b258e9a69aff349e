//! Helpers shared by the distributed tests: ranks as threads joined over loopback TCP (the
//! same rendezvous and ring code as separate processes use), and the tiny training run that
//! every data-parallel variant must reproduce.

// Each test crate uses its own subset of these.
#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use lm_core::backends::NdArrayAutodiff;
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, AdamWConfig};
use lm_core::parallel::{ParallelMode, ParallelRank};
use lm_core::params::{flatten_params, named_grads};
use lm_core::{TransformerConfig, TransformerLm};
use lm_systems::dist::ddp::local_rows;
use lm_systems::dist::train::DistRank;
use lm_systems::dist::{Communicator, DistEnv, DistError, TcpCommunicator};

/// A free port for a rendezvous, below Linux's ephemeral range (32768–60999): a port that
/// `bind(0)` handed out could be handed again to another test process's ring listener before
/// our rank 0 binds it. Random, so concurrent test processes rarely pick the same one.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new();
    (0u64..)
        .map(|attempt| 20_000 + (seed.hash_one(attempt) % 12_000) as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("some port in 20000..32000 is free")
}

pub fn env(rank: usize, world_size: usize, port: u16, timeout_s: u64) -> DistEnv {
    DistEnv {
        rank,
        world_size,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        timeout: Duration::from_secs(timeout_s),
    }
}

/// `model`'s parameters as new autodiff leaves, for one rank thread. Rank threads must not
/// share parameter nodes: burn's autodiff merges graphs that share a node, so their backward
/// passes would interleave (hooks firing in a different order per rank) and burn 0.21 can
/// deadlock on its graph locks. Separate processes, as in real runs, never share them.
pub fn rank_copy(model: &TransformerLm<NdArrayAutodiff>) -> TransformerLm<NdArrayAutodiff> {
    model.clone().fork(&Default::default())
}

/// Runs `f(rank, communicator)` on `world` threads joined through one rendezvous.
pub fn on_ranks<T: Send>(world: usize, f: impl Fn(usize, TcpCommunicator) -> T + Sync) -> Vec<T> {
    on_ranks_with(world, TcpCommunicator::connect, f)
}

/// [`on_ranks`] with the communicator made by `connect` from each rank's environment.
pub fn on_ranks_with<C, T: Send>(
    world: usize,
    connect: impl Fn(&DistEnv) -> Result<C, DistError> + Sync,
    f: impl Fn(usize, C) -> T + Sync,
) -> Vec<T> {
    let port = free_port();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let (f, connect) = (&f, &connect);
                s.spawn(move || f(rank, connect(&env(rank, world, port, 20)).unwrap()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Rank `rank`'s test values.
pub fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((rank * 31 + i * 7) % 13) as f32 - 6.0 + 0.25 * rank as f32)
        .collect()
}

/// Every collective of `world` ranks (communicators from `connect`) against its definition,
/// for lengths below, at and above the world size, and not multiples of it.
pub fn check_collectives<C: Communicator>(
    world: usize,
    connect: impl Fn(&DistEnv) -> Result<C, DistError> + Sync,
) {
    for len in [1, 3, 7, 1000] {
        let results = on_ranks_with(world, &connect, |rank, mut comm| {
            let mut summed = values(rank, len);
            comm.all_reduce_sum(&mut summed).unwrap();
            let mut broadcast = values(rank, len);
            comm.broadcast(&mut broadcast, world - 1).unwrap();
            let shard = values(rank, len);
            let mut gathered = vec![0.0; len * world];
            comm.all_gather(&shard, &mut gathered).unwrap();
            let mut scattered = vec![0.0; len];
            comm.reduce_scatter_sum(&values(rank, len * world), &mut scattered)
                .unwrap();
            comm.barrier().unwrap();
            (summed, broadcast, gathered, scattered)
        });
        let sum_of = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0..world).map(|r| values(r, n)[i]).sum())
                .collect()
        };
        let total = sum_of(len * world);
        for (rank, (summed, broadcast, gathered, scattered)) in results.iter().enumerate() {
            close(summed, &sum_of(len));
            close(broadcast, &values(world - 1, len));
            let expected: Vec<f32> = (0..world).flat_map(|r| values(r, len)).collect();
            close(gathered, &expected);
            close(scattered, &total[rank * len..(rank + 1) * len]);
        }
    }
}

pub fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "[{i}] {x} vs {y}");
    }
}

pub fn tiny() -> TransformerConfig {
    TransformerConfig::new(48, 12, 16, 2, 2, 32)
}

pub const GLOBAL_BATCH: usize = 12;
pub const STEPS: u64 = 3;

/// Step `step`'s global batch: `GLOBAL_BATCH` rows of 11 tokens → (input, target) rows.
pub fn batch(
    step: u64,
    rows: std::ops::Range<usize>,
) -> (
    Tensor<NdArrayAutodiff, 2, Int>,
    Tensor<NdArrayAutodiff, 2, Int>,
) {
    let tokens: Vec<i64> = rows
        .clone()
        .flat_map(|r| (0..11).map(move |i| ((r as u64 * 17 + i * 5 + step * 3) % 48) as i64))
        .collect();
    let all = Tensor::<NdArrayAutodiff, 2, Int>::from_data(
        TensorData::new(tokens, [rows.len(), 11]),
        &Default::default(),
    );
    let n = rows.len();
    (all.clone().slice([0..n, 0..10]), all.slice([0..n, 1..11]))
}

pub fn config() -> AdamWConfig {
    AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Default::default()
    }
}

/// Single-process reference: the global batch, on-device clipping and fused AdamW (what
/// the trainer does).
pub fn single_process(max_norm: f64) -> Vec<f32> {
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    train_single(model, max_norm)
}

/// [`single_process`] from `model`.
pub fn train_single(mut model: TransformerLm<NdArrayAutodiff>, max_norm: f64) -> Vec<f32> {
    let mut opt = AdamW::new(config());
    for step in 0..STEPS {
        let (x, y) = batch(step, 0..GLOBAL_BATCH);
        let loss = cross_entropy(model.forward(x), y);
        let grads = named_grads(&model, &loss.backward());
        model = opt.step_module_fused(model, &grads, 1e-2, Some(max_norm)).0;
    }
    flatten_params(&model)
}

/// Every rank's parameters after [`STEPS`] steps of `mode` through the trainer's interface
/// (`DistRank` starts a `RankTrainer`), each rank on its rows of the global batch. The ranks
/// start from different seeds: starting must make them all continue from rank 0's model.
pub fn train_ranks(world: usize, mode: ParallelMode, max_norm: f64) -> Vec<Vec<f32>> {
    on_ranks(world, |rank, comm| {
        let model = TransformerLm::<NdArrayAutodiff>::new(
            &tiny(),
            1 + rank as u64 * 100,
            &Default::default(),
        )
        .unwrap();
        let start: Box<dyn ParallelRank<NdArrayAutodiff>> = Box::new(DistRank::new(comm, mode));
        let mut trainer = start.start(model, AdamW::new(config())).unwrap();
        let rows = local_rows(GLOBAL_BATCH, rank, world).unwrap();
        for step in 0..STEPS {
            let (x, y) = batch(step, rows.clone());
            let loss = cross_entropy(trainer.forward(x).unwrap(), y);
            trainer.backward(loss).unwrap();
            trainer.step(1e-2, Some(max_norm)).unwrap();
        }
        flatten_params(&trainer.model().unwrap())
    })
}

pub fn assert_same_training(reference: &[f32], ranks: &[Vec<f32>], what: &str) {
    for (rank, params) in ranks.iter().enumerate() {
        assert_eq!(params.len(), reference.len());
        for (i, (p, r)) in params.iter().zip(reference).enumerate() {
            assert!(
                (p - r).abs() <= 1e-5 + 1e-5 * r.abs(),
                "{what}, rank {rank}, parameter value {i}: {p} vs single-process {r}"
            );
        }
    }
}
