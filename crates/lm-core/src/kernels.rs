//! The CubeCL kernels of `lm-kernels` (FlashAttention-2, fused cross-entropy), for builds and
//! backends that have them.
//!
//! GPU builds (`wgpu`, `cuda`) link the kernels and recognise their concrete backends; CPU
//! builds compile none of it and every backend takes the tensor-op implementations.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

#[cfg(any(feature = "wgpu", feature = "cuda"))]
use crate::error::LmError;
use crate::error::Result;

/// Whether backend `B` has the flash-attention kernel in this build.
pub fn flash_available<B: Backend>() -> bool {
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
pub fn flash_attention<B: Backend>(
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

/// Per-row cross-entropy `[rows]` of `[rows, vocab]` logits from the fused kernel, or `None`
/// when `B` has no kernel in this build.
pub fn cross_entropy_rows<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Option<Tensor<B, 1>> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::cross_entropy::try_cross_entropy_rows(logits, targets)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (logits, targets);
        None
    }
}

/// `(bytes in use, bytes reserved)` on `device` for the CubeCL backends of this build, or
/// `None` (CPU backends, where the allocator is the process's own).
pub fn device_memory<B: Backend>(device: &B::Device) -> Option<(u64, u64)> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::memory::device_memory::<B>(device).map(|m| (m.in_use, m.reserved))
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = device;
        None
    }
}
