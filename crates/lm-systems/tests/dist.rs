//! Distributed training on the CPU: ranks as threads joined over loopback TCP (the same
//! rendezvous and ring code as separate processes use).

mod common;

use std::time::Duration;

use common::*;
use lm_core::TransformerLm;
use lm_core::backends::NdArrayAutodiff;
use lm_core::functional::cross_entropy;
use lm_core::parallel::ParallelMode;
use lm_core::params::{named_grads, named_params, to_f32_vec};
use lm_systems::dist::ddp::{DataParallel, DdpStrategy, local_rows};
use lm_systems::dist::{Communicator, DistEnv, DistError, TcpCommunicator};

#[test]
fn env_reads_torchrun_variables_and_names_bad_ones() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(DistEnv::from_lookup(vars(&[])).unwrap(), DistEnv::single());
    let e = DistEnv::from_lookup(vars(&[
        ("WORLD_SIZE", "4"),
        ("RANK", "2"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29500"),
    ]))
    .unwrap();
    assert_eq!(
        (e.rank, e.world_size, e.local_rank, e.master_port),
        (2, 4, 0, 29500)
    );
    assert_eq!(e.master_addr, "10.0.0.1");
    for (pairs, var) in [
        (&[("WORLD_SIZE", "2"), ("MASTER_PORT", "1")][..], "RANK"),
        (
            &[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_PORT", "1")][..],
            "RANK",
        ),
        (
            &[("WORLD_SIZE", "two"), ("RANK", "0"), ("MASTER_PORT", "1")][..],
            "WORLD_SIZE",
        ),
        (
            &[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "70000")][..],
            "MASTER_PORT",
        ),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(pairs.to_vec().into_boxed_slice());
        let err = DistEnv::from_lookup(vars(pairs)).unwrap_err().to_string();
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[test]
fn collectives_match_their_definitions() {
    for world in [1, 2, 3, 4] {
        check_collectives(world, TcpCommunicator::connect);
    }
}

#[test]
fn a_rank_that_exits_fails_its_peers_with_its_name() {
    let port = free_port();
    let errors = std::thread::scope(|s| {
        let r0 = s.spawn(|| {
            let mut comm = TcpCommunicator::connect(&env(0, 2, port, 5)).unwrap();
            comm.all_reduce_sum(&mut [1.0; 64]).unwrap_err()
        });
        let r1 = s.spawn(|| {
            let comm = TcpCommunicator::connect(&env(1, 2, port, 5)).unwrap();
            drop(comm); // exits without joining the collective
        });
        r1.join().unwrap();
        r0.join().unwrap()
    });
    let text = errors.to_string();
    assert!(matches!(errors, DistError::Peer { peer: 1, .. }), "{text}");
    assert!(
        text.contains("rank 0") && text.contains("peer rank 1"),
        "{text}"
    );
}

#[test]
fn a_rank_that_hangs_fails_its_peers_within_the_timeout() {
    let port = free_port();
    let (err, waited) = std::thread::scope(|s| {
        let r0 = s.spawn(|| {
            let mut comm = TcpCommunicator::connect(&env(0, 2, port, 1)).unwrap();
            let started = std::time::Instant::now();
            (
                comm.all_reduce_sum(&mut [1.0; 8]).unwrap_err(),
                started.elapsed(),
            )
        });
        s.spawn(|| {
            let comm = TcpCommunicator::connect(&env(1, 2, port, 1)).unwrap();
            std::thread::sleep(Duration::from_secs(3)); // alive, but never joins the collective
            drop(comm);
        });
        r0.join().unwrap()
    });
    let text = err.to_string();
    assert!(
        text.contains("peer rank 1") && text.contains("timed out"),
        "{text}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "failed only after the peer exited: {waited:?}"
    );
}

#[test]
fn a_rank_that_never_joins_times_out_naming_it() {
    let port = free_port();
    let started = std::time::Instant::now();
    let err = TcpCommunicator::connect(&env(0, 3, port, 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 2]") && err.contains("did not join"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn ranks_calling_different_collectives_get_an_error() {
    let results = on_ranks(2, |rank, mut comm| {
        let mut buf = vec![1.0; 4 + rank];
        comm.all_reduce_sum(&mut buf).map_err(|e| e.to_string())
    });
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.iter().any(|e| e.contains("different collectives")),
        "{results:?}"
    );
}

// --- data parallel training equals single-process training on the global batch ---

/// ~300 values a bucket: several buckets, some parameters alone.
const STRATEGIES: [DdpStrategy; 3] = [
    DdpStrategy::Naive,
    DdpStrategy::Flat,
    DdpStrategy::Bucketed {
        bucket_size_mb: 0.0012,
    },
];

/// The averaging strategies as `train.ddp` modes.
fn mode(strategy: DdpStrategy) -> ParallelMode {
    match strategy {
        DdpStrategy::Naive => ParallelMode::Naive,
        DdpStrategy::Flat => ParallelMode::Flat,
        DdpStrategy::Bucketed { bucket_size_mb } => ParallelMode::Bucketed { bucket_size_mb },
    }
}

#[test]
fn ddp_variants_train_like_one_process_on_the_global_batch() {
    // A loose limit never clips; a tight one clips every step with the global norm.
    for max_norm in [1e6, 0.05] {
        let reference = single_process(max_norm);
        for world in [2, 4] {
            for strategy in STRATEGIES {
                let what = format!("{strategy:?} on {world} ranks, max_norm {max_norm}");
                assert_same_training(
                    &reference,
                    &train_ranks(world, mode(strategy), max_norm),
                    &what,
                );
            }
        }
    }
}

#[test]
fn zero1_trains_like_plain_adamw() {
    for max_norm in [1e6, 0.05] {
        let reference = single_process(max_norm);
        for world in [2, 3, 4] {
            let what = format!("ZeRO-1 on {world} ranks, max_norm {max_norm}");
            assert_same_training(
                &reference,
                &train_ranks(world, ParallelMode::Zero1, max_norm),
                &what,
            );
        }
    }
}

#[test]
fn an_uneven_global_batch_is_an_error() {
    let err = local_rows(5, 0, 2).unwrap_err().to_string();
    assert!(
        err.contains("global batch (5)") && err.contains("2 ranks"),
        "{err}"
    );
}

/// AdamW barely sees a gradient's scale, so the averaging itself is checked directly: after
/// `average_gradients` every rank holds the global batch's gradient.
#[test]
fn averaged_gradients_are_the_global_batch_gradient() {
    let grads_of = |model: &TransformerLm<NdArrayAutodiff>, rows| {
        let (x, y) = batch(0, rows);
        let loss = cross_entropy(model.forward(x), y);
        named_grads(model, &loss.backward())
    };
    let flat_grads = |g: &lm_core::params::NamedTensors<lm_core::backends::NdArray>| -> Vec<f32> {
        g.values().flat_map(|t| to_f32_vec(&t.values)).collect()
    };
    let model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 1, &Default::default()).unwrap();
    let reference = flat_grads(&grads_of(&model, 0..GLOBAL_BATCH));
    for world in [2, 4] {
        for strategy in STRATEGIES {
            let per_rank = on_ranks(world, |rank, comm| {
                let mut ddp = DataParallel::new(comm, strategy);
                let rows = local_rows(GLOBAL_BATCH, rank, world).unwrap();
                let mut grads = grads_of(&rank_copy(&model), rows);
                let stats = ddp.average_gradients(&mut grads).unwrap();
                (flat_grads(&grads), stats)
            });
            for (grads, stats) in &per_rank {
                close(grads, &reference);
                assert_eq!(
                    stats.values,
                    reference.len(),
                    "{strategy:?}: every value sent once"
                );
            }
            let collectives = per_rank[0].1.collectives;
            match strategy {
                DdpStrategy::Flat => assert_eq!(collectives, 1),
                DdpStrategy::Naive => assert_eq!(collectives, named_params(&model).len()),
                DdpStrategy::Bucketed { .. } => {
                    assert!(
                        collectives > 1 && collectives < named_params(&model).len(),
                        "{collectives}"
                    )
                }
            }
        }
    }
}
