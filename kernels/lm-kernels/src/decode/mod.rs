//! Inference-only kernels of the generation engine. SwiGLU's gate `silu(gate) · up` in one
//! launch (tensor ops: three); a residual add and the RMSNorm after it in one (two kernels
//! otherwise); the next token of every row drawn from its logits in one ([`draw`]). The
//! decode step, one token per row over a preallocated KV cache: the projection's bias, RoPE
//! on q and k and the write of k and v at each row's own slot in one launch (the tensor-op version: a bias add, four RoPE ops, three head copies
//! and a masked select over the whole cache), and the attention in one launch (tensor ops:
//! two matmuls, a softmax, the mask and the head reshapes, about a dozen).

pub mod backend;
pub mod draw;
pub mod kernels;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

pub use crate::decode_inputs::{QkvInputs, decode_kernels_off};
pub use backend::{DecodeBackend, GroupedLaunch, attention_units, grouped_launch};

use crate::dispatch::same_type;

/// Largest head dim [`decode_attention`] takes (one unit per output column).
pub const MAX_HEAD_DIM: usize = 128;

impl<B: Backend> QkvInputs<B> {
    fn cast<K: Backend>(self) -> QkvInputs<K> {
        QkvInputs {
            qkv: same_type(self.qkv),
            bias: self.bias.map(same_type),
            cos: same_type(self.cos),
            sin_signed: same_type(self.sin_signed),
            partner: same_type(self.partner),
            slots: same_type(self.slots),
            heads: self.heads,
        }
    }
}

/// `(q [rows, heads, head_dim], k_cache, v_cache)`: bias, RoPE and the cache write of one
/// decode step in one kernel (see [`DecodeBackend::decode_qkv`]).
pub fn decode_qkv<B: DecodeBackend>(
    inputs: QkvInputs<B>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
) -> (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>) {
    let float = |t: Tensor<B, 2>| t.into_primitive().tensor();
    let [q, k, v] = B::decode_qkv(
        float(inputs.qkv),
        inputs.bias.map(|b| b.into_primitive().tensor()),
        [float(inputs.cos), float(inputs.sin_signed)],
        inputs.partner.into_primitive(),
        inputs.slots.into_primitive(),
        k_cache.into_primitive().tensor(),
        v_cache.into_primitive().tensor(),
        inputs.heads,
    );
    let wrap4 = |t| Tensor::from_primitive(TensorPrimitive::Float(t));
    (
        Tensor::from_primitive(TensorPrimitive::Float(q)),
        wrap4(k),
        wrap4(v),
    )
}

/// `[rows, heads, head_dim]`: `softmax(q kᵀ · scale + bias) v` per row and query head over
/// the first `len` cache slots, `bias [rows, len]` f32 (−∞ = masked, at least one slot
/// visible per row), grouped-query heads as in [`DecodeBackend::decode_attention`].
pub fn decode_attention<B: DecodeBackend>(
    q: Tensor<B, 3>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
    bias: Tensor<B, 2>,
    scale: f32,
) -> Tensor<B, 3> {
    let out = B::decode_attention(
        q.into_primitive().tensor(),
        k_cache.into_primitive().tensor(),
        v_cache.into_primitive().tensor(),
        bias.into_primitive().tensor(),
        scale,
    );
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

type QkvOutput<B> = (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>);
type QkvRunner<B> = fn(QkvInputs<B>, Tensor<B, 4>, Tensor<B, 4>) -> QkvOutput<B>;
type AttentionRunner<B> =
    fn(Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 2>, f32) -> Tensor<B, 3>;

fn qkv_as<B: Backend, K: DecodeBackend>(
    inputs: QkvInputs<B>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
) -> QkvOutput<B> {
    let (q, k, v) = decode_qkv::<K>(inputs.cast(), same_type(k_cache), same_type(v_cache));
    (same_type(q), same_type(k), same_type(v))
}

fn attention_as<B: Backend, K: DecodeBackend>(
    q: Tensor<B, 3>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
    bias: Tensor<B, 2>,
    scale: f32,
) -> Tensor<B, 3> {
    same_type(decode_attention::<K>(
        same_type(q),
        same_type(k_cache),
        same_type(v_cache),
        same_type(bias),
        scale,
    ))
}

/// `pick`'s runner (one of this build's inference kernel backends, or `None`) when the
/// operands `fit` the kernel, unless `LM_DECODE_KERNELS=0`.
fn kernel_if<R>(fits: bool, pick: impl FnOnce() -> Option<R>) -> Option<R> {
    if decode_kernels_off() || !fits {
        return None;
    }
    pick()
}

/// [`kernel_if`] for a head dim the attention kernels take.
fn kernel_for<R>(head_dim: usize, pick: impl FnOnce() -> Option<R>) -> Option<R> {
    kernel_if(head_dim <= MAX_HEAD_DIM, pick)
}

/// Whether `B` (one of this build's inference kernel backends) has the decode kernels for
/// `head_dim`, unless `LM_DECODE_KERNELS=0`.
pub fn supports<B: Backend>(head_dim: usize) -> bool {
    kernel_for(head_dim, || {
        crate::for_inner_kernel_backend!(B, |K| std::any::type_name::<K>())
    })
    .is_some()
}

/// [`decode_qkv`] when [`supports`] `B` and the head dim, else `None` (ask [`supports`]
/// first: the inputs are consumed either way).
pub fn try_decode_qkv<B: Backend>(
    inputs: QkvInputs<B>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
) -> Option<QkvOutput<B>> {
    let run = kernel_for(k_cache.dims()[3], || {
        crate::for_inner_kernel_backend!(B, |K| qkv_as::<B, K> as QkvRunner<B>)
    })?;
    Some(run(inputs, k_cache, v_cache))
}

/// [`decode_attention`] when [`supports`] `B` and the head dim, else `None` (ask
/// [`supports`] first: the inputs are consumed either way).
pub fn try_decode_attention<B: Backend>(
    q: Tensor<B, 3>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
    bias: Tensor<B, 2>,
    scale: f32,
) -> Option<Tensor<B, 3>> {
    let run = kernel_for(q.dims()[2], || {
        crate::for_inner_kernel_backend!(B, |K| attention_as::<B, K> as AttentionRunner<B>)
    })?;
    Some(run(q, k_cache, v_cache, bias, scale))
}

/// `silu(gate) · up` (SwiGLU's gate) in one launch when `B` is one of this build's
/// inference kernel backends (no autodiff: nothing here is differentiable), unless
/// `LM_DECODE_KERNELS=0`; else the operands back, for tensor ops.
pub fn try_silu_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    type Runner<B, const D: usize> = fn(Tensor<B, D>, Tensor<B, D>) -> Tensor<B, D>;
    fn run_as<B: Backend, K: DecodeBackend, const D: usize>(
        gate: Tensor<B, D>,
        up: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let gate: Tensor<K, D> = same_type(gate);
        let up: Tensor<K, D> = same_type(up);
        let out = K::silu_mul(gate.into_primitive().tensor(), up.into_primitive().tensor());
        same_type(Tensor::<K, D>::from_primitive(TensorPrimitive::Float(out)))
    }
    let run = kernel_if(gate.dims() == up.dims(), || {
        crate::for_inner_kernel_backend!(B, |K| run_as::<B, K, D> as Runner<B, D>)
    });
    match run {
        Some(run) => Ok(run(gate, up)),
        None => Err((gate, up)),
    }
}

/// `(x + delta, rms_norm(x + delta) · weight)` over the last dim in one launch when `B` is
/// one of this build's inference kernel backends (no autodiff), unless
/// `LM_DECODE_KERNELS=0`; else the operands back, for tensor ops.
#[allow(clippy::type_complexity)]
pub fn try_add_rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    delta: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Result<(Tensor<B, D>, Tensor<B, D>), (Tensor<B, D>, Tensor<B, D>)> {
    type Runner<B, const D: usize> =
        fn(Tensor<B, D>, Tensor<B, D>, Tensor<B, 1>, f32) -> (Tensor<B, D>, Tensor<B, D>);
    fn run_as<B: Backend, K: DecodeBackend, const D: usize>(
        x: Tensor<B, D>,
        delta: Tensor<B, D>,
        weight: Tensor<B, 1>,
        eps: f32,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        let dims = x.dims();
        let dim = dims[D - 1];
        let rows = dims[..D - 1].iter().product();
        let flat = |t: Tensor<B, D>| {
            let t: Tensor<K, 2> = same_type(t.reshape([rows, dim]));
            t.into_primitive().tensor()
        };
        let weight: Tensor<K, 1> = same_type(weight);
        let [sum, y] = K::add_rms_norm(flat(x), flat(delta), weight.into_primitive().tensor(), eps);
        let back = |t| {
            let t = Tensor::<K, 2>::from_primitive(TensorPrimitive::Float(t));
            same_type::<_, Tensor<B, 2>>(t).reshape(dims)
        };
        (back(sum), back(y))
    }
    let fits = x.dims() == delta.dims() && weight.dims()[0] == x.dims()[D - 1];
    let run = kernel_if(fits, || {
        crate::for_inner_kernel_backend!(B, |K| run_as::<B, K, D> as Runner<B, D>)
    });
    match run {
        Some(run) => Ok(run(x, delta, weight, eps as f32)),
        None => Err((x, delta)),
    }
}

/// `[rows, 3]` f32: per row of `logits [rows, vocab]` the drawn token, its log-prob and a
/// finite flag, in one launch (see [`draw::draw_rows`]; `params [rows, 2]` holds `(1 /
/// temperature, u)`, `u < 0` for greedy) when `B` is one of this build's inference kernel
/// backends, unless `LM_DECODE_KERNELS=0`; else the operands back, for tensor ops.
#[allow(clippy::type_complexity)]
pub fn try_draw_rows<B: Backend>(
    logits: Tensor<B, 2>,
    params: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    type Runner<B> = fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>;
    fn run_as<B: Backend, K: DecodeBackend>(
        logits: Tensor<B, 2>,
        params: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let float = |t: Tensor<B, 2>| same_type::<_, Tensor<K, 2>>(t).into_primitive().tensor();
        let out = K::draw_rows(float(logits), float(params));
        same_type(Tensor::<K, 2>::from_primitive(TensorPrimitive::Float(out)))
    }
    let fits = params.dims() == [logits.dims()[0], 2] && logits.dims()[1] > 0;
    let run = kernel_if(fits, || {
        crate::for_inner_kernel_backend!(B, |K| run_as::<B, K> as Runner<B>)
    });
    match run {
        Some(run) => Ok(run(logits, params)),
        None => Err((logits, params)),
    }
}
