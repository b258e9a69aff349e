//! The NCCL communicator (feature `nccl`) against the collectives' definitions, one rank
//! per visible GPU (ranks as threads; NCCL refuses two ranks on one GPU). Run on a GPU
//! machine: `cargo test -p lm-systems --features nccl --test nccl`.
#![cfg(feature = "nccl")]

mod common;

use common::*;
use lm_systems::dist::NcclCommunicator;

#[test]
fn nccl_collectives_match_their_definitions_on_every_gpu() {
    let gpus = cudarc::driver::CudaContext::device_count()
        .expect("the CUDA driver must be loadable to run the NCCL tests") as usize;
    assert!(gpus >= 1, "no GPU visible");
    check_collectives(gpus, NcclCommunicator::connect);
    eprintln!("NCCL collectives checked on {gpus} GPU(s)");
}
