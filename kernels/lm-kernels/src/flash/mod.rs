//! FlashAttention-2 (Dao, 2023) in CubeCL, as a burn backend extension with autodiff.
//!
//! - [`kernels`]: the portable `#[cube]` kernels (forward with the per-row logsumexp;
//!   backward as a dQ kernel and a dK/dV kernel, P recomputed from the logsumexp): scalar
//!   f32 arithmetic, no plane operations, small shared memory (lavapipe, WebGPU).
//! - [`mma`]: the same three kernels on tensor cores with every accumulator and the online
//!   softmax in registers (CubeCL's manual MMA, `mma.sync` m16n8k16), for f16/bf16 inputs on
//!   CUDA sm_80+.
//! - [`launch`]: launching them on burn's CubeCL tensors, choosing the path per call.
//! - [`backend`]: the [`FlashAttentionBackend`] trait, implemented for burn's CubeCL backends,
//!   for `Fusion<_>` over them (as custom fusion operations) and for `Autodiff<_>`.
//! - [`api`]: [`flash_attention`] on `Tensor`s with input checks, and [`dispatch`] for
//!   code generic over any backend (lm-core's attention).

pub mod api;
pub mod backend;
pub mod dispatch;
pub mod kernels;
pub mod launch;
pub mod mma;

pub use api::{FlashAttentionError, flash_attention};
pub use backend::FlashAttentionBackend;

/// Head dimensions the kernels are built for (registers hold whole rows).
pub const MAX_HEAD_DIM: usize = 256;

/// `[.., seq, head_dim]` viewed as `heads` independent `[seq, head_dim]` problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn of(dims: &[usize]) -> Self {
        let n = dims.len();
        assert!(n >= 2, "attention tensors have at least [seq, head_dim]");
        Self {
            heads: dims[..n - 2].iter().product(),
            seq: dims[n - 2],
            head_dim: dims[n - 1],
        }
    }
}

/// The shape of `lse` for a `q` of `shape`: `shape` without its last dimension.
pub fn row_shape(shape: &burn::tensor::Shape) -> burn::tensor::Shape {
    let mut rows = shape.clone();
    rows.remove(rows.num_dims() - 1);
    rows
}

/// Tile sizes of the portable kernels: a cube of `block_q` units loads `block_kv` keys at a
/// time (the dK/dV kernel the other way round). Two f32 tiles of `block × head_dim` stay
/// within 16 KiB of shared memory, inside the 32 KiB that lavapipe and WebGPU guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSizes {
    pub block_q: usize,
    pub block_kv: usize,
}

impl TileSizes {
    pub fn for_head_dim(head_dim: usize) -> Self {
        let block = if head_dim <= 64 { 32 } else { 16 };
        Self {
            block_q: block,
            block_kv: block,
        }
    }
}
