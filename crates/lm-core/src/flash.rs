//! The FlashAttention-2 kernel of `lm-kernels`, for builds and backends that have it.
//!
//! GPU builds (`wgpu`, `cuda`) link the CubeCL kernel and recognise their concrete backends;
//! CPU builds compile none of it and every backend takes the plain attention.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

#[cfg(any(feature = "wgpu", feature = "cuda"))]
use crate::error::LmError;
use crate::error::Result;

/// Whether backend `B` has the kernel in this build.
pub fn available<B: Backend>() -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::flash::dispatch::supports::<B>()
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        false
    }
}

/// `(o, lse)` from the kernel for `[batch, heads, seq, head_dim]` inputs (`scale` defaults
/// to `1/√head_dim`), or `None` when `B` has no kernel in this build.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Option<Result<(Tensor<B, 4>, Tensor<B, 3>)>> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::flash::dispatch::try_flash_attention(q, k, v, causal, scale)
            .map(|r| r.map_err(|e| LmError::Kernel(e.to_string())))
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (q, k, v, causal, scale);
        None
    }
}
