//! [`NcclCommunicator`]: the collectives over NCCL, one process per GPU (built with the
//! `nccl` feature; NCCL and the CUDA driver are loaded at run time through cudarc).
//!
//! The ranks first connect over the TCP rendezvous ([`TcpCommunicator`]), through which rank
//! 0 hands its NCCL unique id to the others; the TCP ring stays as the control channel for
//! [`Communicator::barrier`], so a rank that dies or hangs fails the others with its name
//! within the timeout instead of leaving them blocked inside NCCL.
//!
//! The [`Communicator`] trait moves host f32 buffers (the trainer's gradients arrive as host
//! vectors), so each collective copies to the GPU, runs on this rank's stream and copies back.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::{Communicator, DistEnv, DistError, TcpCommunicator};

pub struct NcclCommunicator {
    comm: Comm,
    stream: Arc<CudaStream>,
    control: TcpCommunicator,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it never
// overlap; every use here goes through `&mut self`, and the CUDA context is bound to the
// calling thread before each collective (`on_device`).
unsafe impl Send for NcclCommunicator {}

/// The 128-byte NCCL id as 32 f32 bit patterns, for the f32 broadcast of the TCP ring.
fn id_to_words(id: &Id) -> [f32; 32] {
    let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
    std::array::from_fn(|i| {
        f32::from_bits(u32::from_le_bytes(
            bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"),
        ))
    })
}

fn id_from_words(words: &[f32; 32]) -> Id {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.to_bits().to_le_bytes())
        .collect();
    Id::uninit(std::array::from_fn(|i| bytes[i] as core::ffi::c_char))
}

impl NcclCommunicator {
    /// Joins the run described by `env` on GPU `env.local_rank`.
    pub fn connect(env: &DistEnv) -> Result<Self, DistError> {
        let mut control = TcpCommunicator::connect(env)?;
        let rank = env.rank;
        let fail = |op: &'static str| {
            move |e: String| DistError::Usage {
                rank,
                op,
                reason: e,
            }
        };
        let mut words = [0f32; 32];
        if rank == 0 {
            let id = Id::new().map_err(|e| fail("NCCL unique id")(format!("{e:?}")))?;
            words = id_to_words(&id);
        }
        control.broadcast(&mut words, 0)?;
        let ctx = CudaContext::new(env.local_rank).map_err(|e| {
            fail("CUDA device")(format!("GPU {} (LOCAL_RANK): {e:?}", env.local_rank))
        })?;
        let stream = ctx.default_stream();
        let comm = Comm::from_rank(stream.clone(), rank, env.world_size, id_from_words(&words))
            .map_err(|e| fail("NCCL init")(format!("{e:?}")))?;
        Ok(Self {
            comm,
            stream,
            control,
        })
    }

    fn error(&self, op: &'static str, e: impl std::fmt::Debug) -> DistError {
        DistError::Usage {
            rank: self.rank(),
            op,
            reason: format!("{e:?}"),
        }
    }

    /// Runs `collective` on a device copy of `input` with a device output of `out_len`
    /// values, then copies the output back into `out`.
    fn on_device(
        &mut self,
        op: &'static str,
        input: &[f32],
        out: &mut [f32],
        collective: impl FnOnce(
            &Comm,
            &cudarc::driver::CudaSlice<f32>,
            &mut cudarc::driver::CudaSlice<f32>,
        ) -> Result<
            cudarc::nccl::result::NcclStatus,
            cudarc::nccl::result::NcclError,
        >,
    ) -> Result<(), DistError> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| self.error(op, e))?;
        let src = self
            .stream
            .clone_htod(input)
            .map_err(|e| self.error(op, e))?;
        let mut dst = self
            .stream
            .alloc_zeros::<f32>(out.len())
            .map_err(|e| self.error(op, e))?;
        collective(&self.comm, &src, &mut dst).map_err(|e| self.error(op, e))?;
        self.stream
            .memcpy_dtoh(&dst, out)
            .map_err(|e| self.error(op, e))?;
        self.stream.synchronize().map_err(|e| self.error(op, e))
    }

    fn check_shards(&self, op: &'static str, whole: usize, shard: usize) -> Result<(), DistError> {
        if whole == shard * self.world_size() {
            Ok(())
        } else {
            Err(DistError::Usage {
                rank: self.rank(),
                op,
                reason: format!(
                    "{whole} values are not {} shards of {shard}",
                    self.world_size()
                ),
            })
        }
    }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        let input = buf.to_vec();
        self.on_device("all_reduce", &input, buf, |c, s, d| {
            c.all_reduce(s, d, &ReduceOp::Sum)
        })
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        if root >= self.world_size() {
            return Err(self.error("broadcast", format!("root {root} outside the world")));
        }
        let input = buf.to_vec();
        self.on_device("broadcast", &input, buf, |c, s, d| {
            c.broadcast(Some(s), d, root as i32)
        })
    }

    fn reduce_scatter_sum(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        self.check_shards("reduce_scatter", input.len(), out.len())?;
        self.on_device("reduce_scatter", input, out, |c, s, d| {
            c.reduce_scatter(s, d, &ReduceOp::Sum)
        })
    }

    fn all_gather(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        self.check_shards("all_gather", out.len(), input.len())?;
        self.on_device("all_gather", input, out, |c, s, d| c.all_gather(s, d))
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        self.control.barrier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unique_id_survives_the_f32_broadcast_encoding() {
        let raw: [core::ffi::c_char; 128] =
            std::array::from_fn(|i| (i * 37 % 256) as u8 as core::ffi::c_char);
        let id = Id::uninit(raw);
        let back = id_from_words(&id_to_words(&id));
        assert_eq!(back.internal(), id.internal());
    }
}
