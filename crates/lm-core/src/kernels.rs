//! The kernels of `lm-kernels` (FlashAttention-2, fused cross-entropy and RMSNorm, cuBLASLt
//! GEMMs, the AdamW step, the decode step), for
//! builds and backends that have them.
//!
//! GPU builds (`wgpu`, `cuda`) link the kernels and recognise their concrete backends; CPU
//! builds compile none of it and every backend takes the tensor-op implementations.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::{MatmulKernel, Precision};

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

/// RMSNorm of `x [rows, dim]` with gain `weight [dim]` from the fused kernels (forward and
/// backward), or `None` when `B` has no kernel in this build.
pub fn rms_norm<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, 2>> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::rms_norm::try_rms_norm(x, weight, eps)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (x, weight, eps);
        None
    }
}

/// Whether backend `B` has the generation engine's decode-step kernels ([`decode_qkv`],
/// [`decode_attention`]) for `head_dim` in this build: the CubeCL kernels on the GPU
/// backends, plain loops on `NdArray<f32>` (`crate::cpu_decode`); off with
/// `LM_DECODE_KERNELS=0`.
pub fn has_decode_kernels<B: Backend>(head_dim: usize) -> bool {
    #[cfg(feature = "ndarray")]
    if crate::cpu_decode::supports::<B>() {
        return !lm_kernels::decode_inputs::decode_kernels_off();
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::supports::<B>(head_dim)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = head_dim;
        false
    }
}

/// What the decode step's q/k/v pass reads besides the caches (one token per row).
pub use lm_kernels::decode_inputs::QkvInputs as DecodeQkv;

/// `(q [rows, heads, head_dim], k_cache, v_cache)`: the bias added, q and k rotated, k and
/// v written into the caches `[rows, kv_heads, max_len, head_dim]` at `step.slots`, by one
/// kernel. `None` where [`has_decode_kernels`] is false.
pub fn decode_qkv<B: Backend>(
    step: DecodeQkv<B>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
) -> Option<(Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>)> {
    #[cfg(feature = "ndarray")]
    if crate::cpu_decode::supports::<B>() {
        return crate::cpu_decode::decode_qkv(step, k_cache, v_cache);
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::try_decode_qkv(step, k_cache, v_cache)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (step, k_cache, v_cache);
        None
    }
}

/// `[rows, heads, head_dim]`: one query token per row attending over the first `len` cache
/// slots with additive `bias [rows, len]`, scores scaled by `scale`, grouped-query heads;
/// one kernel. `None` where [`has_decode_kernels`] is false.
pub fn decode_attention<B: Backend>(
    q: Tensor<B, 3>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
    bias: Tensor<B, 2>,
    scale: f32,
) -> Option<Tensor<B, 3>> {
    #[cfg(feature = "ndarray")]
    if crate::cpu_decode::supports::<B>() {
        return crate::cpu_decode::decode_attention(q, k_cache, v_cache, bias, scale);
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::try_decode_attention(q, k_cache, v_cache, bias, scale)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (q, k_cache, v_cache, bias, scale);
        None
    }
}

/// `silu(gate) · up` in one kernel on inference (non-autodiff) kernel backends; elsewhere
/// the operands back, for tensor ops.
#[allow(clippy::type_complexity)]
pub fn silu_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> std::result::Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::try_silu_mul(gate, up)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        Err((gate, up))
    }
}

/// `(x + delta, RMSNorm(x + delta))` in one kernel on inference (non-autodiff) kernel
/// backends; elsewhere the operands back, for tensor ops.
#[allow(clippy::type_complexity)]
pub fn add_rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    delta: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> std::result::Result<(Tensor<B, D>, Tensor<B, D>), (Tensor<B, D>, Tensor<B, D>)> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::try_add_rms_norm(x, delta, weight, eps)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (weight, eps);
        Err((x, delta))
    }
}

/// `[rows, 3]` (token, log-prob, finite flag) drawn from `logits [rows, vocab]` by one
/// kernel on inference (non-autodiff) kernel backends, `params [rows, 2]` holding `(1 /
/// temperature, u)` per row (`u < 0`: greedy); elsewhere the operands back.
#[allow(clippy::type_complexity)]
pub fn draw_rows<B: Backend>(
    logits: Tensor<B, 2>,
    params: Tensor<B, 2>,
) -> std::result::Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::decode::try_draw_rows(logits, params)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        Err((logits, params))
    }
}

/// `[1]`: `Σ x²` of a flat f32 buffer in one reading pass where the AdamW kernels are
/// ([`has_adamw_kernel`]), else by tensor ops (`x²` written, then summed).
pub fn sum_squares<B: Backend>(x: Tensor<B, 1>) -> Tensor<B, 1> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    let x = match lm_kernels::adamw::try_sum_squares(x) {
        Ok(sum) => return sum,
        Err(x) => x,
    };
    x.square().sum()
}

/// Whether [`adamw_step`] has a kernel for backend `B` (wgpu and CUDA builds; off with
/// `LM_FUSED_ADAMW=0`).
pub fn has_adamw_kernel<B: Backend>() -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        lm_kernels::adamw::supports::<B>()
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        false
    }
}

/// One AdamW step of flat f32 buffers in one kernel: `(param', m', v')` with `grad` scaled by
/// `scale [1]`; `alpha_t` includes the bias correction, `decay = lr · weight_decay`. `None`
/// where [`has_adamw_kernel`] is false.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    scale: Tensor<B, 1>,
    (b1, b2, eps): (f64, f64, f64),
    alpha_t: f64,
    decay: f64,
) -> Option<(Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>)> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        let scalars = lm_kernels::adamw::AdamWScalars {
            b1: b1 as f32,
            b2: b2 as f32,
            eps: eps as f32,
            alpha_t: alpha_t as f32,
            decay: decay as f32,
        };
        lm_kernels::adamw::try_adamw_step(param, grad, m, v, scale, scalars)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (param, grad, m, v, scale, b1, b2, eps, alpha_t, decay);
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

/// The process's matmul policy: 0 = never set (generation, which has no model config:
/// cuBLASLt for products of at least [`GENERATION_CUBLASLT_MIN_ROWS`] rows, burn's matmul
/// for the small decode products, where cuBLASLt's per-product host path costs more than it
/// saves), 1 = cuBLASLt strict f32, 2 = cuBLASLt TF32, 3 = burn's matmul. One process trains
/// or serves one model, so a global set when the model is built serves the free functions
/// (attention) that have no config at hand.
static MATMUL_POLICY: AtomicU8 = AtomicU8::new(0);
#[cfg(feature = "cuda")]
const POLICY_UNSET: u8 = 0;
const POLICY_CUBLASLT_STRICT: u8 = 1;
const POLICY_CUBLASLT_TF32: u8 = 2;
const POLICY_BURN: u8 = 3;

/// Rows (all of the left operand's dims but the last, multiplied) from which an unset
/// policy takes cuBLASLt: decode steps of 256 rows ran 1.36x faster through it than through
/// burn's matmul on H100s, those of 32 rows 0.87x (two leases compared, docs/PERF.md,
/// generation runs 3 and 4).
pub const GENERATION_CUBLASLT_MIN_ROWS: usize = 128;

/// Makes [`matmul`] follow a model's `matmul` and `precision` settings (`LM_CUDA_GEMM=burn`
/// or `=cublaslt` in the environment overrides both the setting and the default).
pub fn set_matmul_policy(kernel: MatmulKernel, precision: Precision) {
    let policy = match (kernel, precision) {
        (MatmulKernel::Burn, _) => POLICY_BURN,
        (MatmulKernel::Auto, Precision::Tf32) => POLICY_CUBLASLT_TF32,
        (MatmulKernel::Auto, _) => POLICY_CUBLASLT_STRICT,
    };
    MATMUL_POLICY.store(policy, Ordering::Relaxed);
}

/// The policy in force: the environment's override, else what was set.
#[cfg(feature = "cuda")]
fn matmul_policy() -> u8 {
    static ENV: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let env = *ENV.get_or_init(|| match std::env::var("LM_CUDA_GEMM").as_deref() {
        Ok("burn") => Some(false),
        Ok("cublaslt") => Some(true),
        _ => None,
    });
    let set = MATMUL_POLICY.load(Ordering::Relaxed);
    match env {
        Some(false) => POLICY_BURN,
        Some(true) if set == POLICY_UNSET || set == POLICY_BURN => POLICY_CUBLASLT_STRICT,
        _ => set,
    }
}

/// `lhs · rhs` (`[.., m, k] · [.., k, n]`): cuBLASLt on the CUDA backend (strict f32, TF32
/// under `precision = "tf32"`, bf16/f16 with f32 accumulation), burn's matmul elsewhere or
/// when the policy says `burn`.
pub fn matmul<B: Backend, const D: usize>(lhs: Tensor<B, D>, rhs: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "cuda")]
    let (lhs, rhs) = {
        use lm_kernels::gemm::{F32Math, try_matmul};
        let mut policy = matmul_policy();
        if policy == POLICY_UNSET {
            let rows: usize = lhs.dims()[..D - 1].iter().product();
            policy = if rows >= GENERATION_CUBLASLT_MIN_ROWS {
                POLICY_CUBLASLT_STRICT
            } else {
                POLICY_BURN
            };
        }
        if policy != POLICY_BURN {
            let math = if policy == POLICY_CUBLASLT_TF32 {
                F32Math::Tf32
            } else {
                F32Math::Strict
            };
            match try_matmul(lhs, rhs, math) {
                Ok(product) => return product,
                Err(operands) => operands,
            }
        } else {
            (lhs, rhs)
        }
    };
    lhs.matmul(rhs)
}
