//! Distributed training (issue 6): a [`Communicator`] with collectives over f32 buffers, the
//! rendezvous that connects the ranks, and the data parallelism built on it: gradient
//! averaging after the backward and ZeRO-1 ([`ddp`]), averaging overlapped with the backward
//! ([`overlap`]) and fully sharded weights ([`fsdp`]); [`train`] offers each to the
//! trainer (`lm train --nproc-per-node N`, selected by `train.ddp`).
//!
//! [`TcpCommunicator`] is the CPU implementation (ranks on loopback or across hosts, a ring
//! over TCP); [`nccl::NcclCommunicator`] (feature `nccl`) runs the same collectives on GPUs.
//! The training code only sees the trait.

pub mod autodiff;
pub mod ddp;
pub mod env;
pub mod fsdp;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod overlap;
pub mod staged;
pub mod tcp;
pub mod train;

use std::time::Duration;

pub use env::DistEnv;
#[cfg(feature = "nccl")]
pub use nccl::NcclCommunicator;
pub use tcp::TcpCommunicator;
pub use train::DistRank;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("distributed setup: environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("rank {rank}: rendezvous at {addr} failed: {reason}")]
    Rendezvous {
        rank: usize,
        addr: String,
        reason: String,
    },
    #[error("rank {rank}: peer rank {peer} {what} (timeout {timeout:?}): {reason}")]
    Peer {
        rank: usize,
        peer: usize,
        what: &'static str,
        timeout: Duration,
        reason: String,
    },
    #[error("model: {0}")]
    Model(#[from] lm_core::LmError),
    #[error("rank {rank}: {op}: {reason}")]
    Usage {
        rank: usize,
        op: &'static str,
        reason: String,
    },
}

/// Collectives over host f32 buffers, identical on every rank (each rank calls the same
/// sequence of operations with the same lengths).
pub trait Communicator: Send {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Every rank ends with the elementwise sum over ranks.
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError>;
    /// Every rank ends with `root`'s values.
    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError>;
    /// `input` is `world_size` equal shards; rank r receives the sum over ranks of shard r.
    fn reduce_scatter_sum(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError>;
    /// `out` is `world_size` shards; shard r is rank r's `input`.
    fn all_gather(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<(), DistError>;
}

/// A communicator chosen at run time (TCP or NCCL) behind one type.
impl Communicator for Box<dyn Communicator> {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn world_size(&self) -> usize {
        (**self).world_size()
    }
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        (**self).all_reduce_sum(buf)
    }
    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        (**self).broadcast(buf, root)
    }
    fn reduce_scatter_sum(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        (**self).reduce_scatter_sum(input, out)
    }
    fn all_gather(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        (**self).all_gather(input, out)
    }
    fn barrier(&mut self) -> Result<(), DistError> {
        (**self).barrier()
    }
}
