//! [`DecodeBackend`]: the burn backend extension for the decode-step kernels and its
//! implementations (CubeCL backends; `Fusion<_>` over them as custom operations). Inference
//! only: there is no autodiff implementation.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::draw::{DRAW_OUT, draw_rows};
use super::kernels::{decode_attention, decode_attention_grouped, decode_qkv, silu_mul};
use crate::fusion_op::{Body, outputs, register, register_float};
use crate::rms_norm::backend::UNITS as NORM_UNITS;
use crate::rms_norm::kernels::add_rms_norm_forward;

/// Units per cube of the draw (one cube per row of the logits).
const DRAW_UNITS: usize = 256;

/// `t` in f32 (the draw's parameters are read as f32 whatever the float type).
fn cast_f32<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.dtype == DType::F32 {
        t
    } else {
        burn_cubecl::kernel::cast(t, DType::F32)
    }
}

/// Units per cube of the element-wise q/k/v kernel.
const ELEMENTWISE_UNITS: u32 = 256;

/// Units per cube of [`decode_attention`] for head dim `head_dim` (≤ 128): a power of two
/// (the reductions halve it), at least 64 and at least the head dim (one unit per output
/// column).
pub fn attention_units(head_dim: usize) -> usize {
    head_dim.next_power_of_two().max(64)
}

/// How [`decode_attention_grouped`] is launched: units per cube and slots per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedLaunch {
    pub units: usize,
    pub chunk: usize,
}

/// Fewest cubes (rows × kv heads) for which the grouped kernel is chosen: below, one cube
/// per (row, query head) keeps more of the GPU busy.
const GROUPED_MIN_CUBES: usize = 64;

/// Shared memory the kernels may use (the portable path's limit, e.g. lavapipe).
const SHARED_BYTES: usize = 32 * 1024;

/// The grouped kernel's launch for `rows` rows of `kv_heads` kv heads, each serving
/// `group` query heads of `head_dim`, or `None` for the per-query-head kernel: too few
/// cubes to fill the GPU, or a group too large for shared memory. `LM_DECODE_GROUPED=1`
/// / `0` forces the choice (where it fits), for benchmarks.
pub fn grouped_launch(
    rows: usize,
    kv_heads: usize,
    group: usize,
    head_dim: usize,
) -> Option<GroupedLaunch> {
    let chunk = grouped_chunk(group, head_dim)?;
    let forced = std::env::var("LM_DECODE_GROUPED").ok();
    let grouped = match forced.as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => rows * kv_heads >= GROUPED_MIN_CUBES,
    };
    grouped.then_some(GroupedLaunch { units: 128, chunk })
}

/// Slots per chunk of the grouped kernel for `group` query heads of `head_dim`: 32, or 16
/// for large groups; `None` when even that exceeds [`SHARED_BYTES`].
fn grouped_chunk(group: usize, head_dim: usize) -> Option<usize> {
    let chunk = if group * head_dim <= 1024 { 32 } else { 16 };
    // q and the outputs (group × head_dim each), the padded tile, and per head: its chunk
    // of scores plus three running values (sized group × chunk).
    let floats = 2 * group * head_dim + chunk * (head_dim + 1) + 4 * group * chunk;
    (floats * 4 <= SHARED_BYTES).then_some(chunk)
}

/// A backend with the decode-step kernels over a `[rows, kv_heads, max_len, head_dim]` cache.
pub trait DecodeBackend: Backend {
    /// `(q, k_cache, v_cache)`: the stacked projection `qkv [rows, (heads + 2·kv_heads) ·
    /// head_dim]` plus `bias [(heads + 2·kv_heads) · head_dim]` (if any), q and k rotated by
    /// RoPE (`x·cos + x[partner]·sin_signed` with per-row tables `[rows, head_dim]` and
    /// `partner [head_dim]`); q `[rows, heads, head_dim]` returned, k and v written into the
    /// caches `[rows, kv_heads, max_len, head_dim]` at slot `slots[row]` (rows whose slot is
    /// outside `0..max_len` write nothing), in place when the caches are uniquely owned.
    #[allow(clippy::too_many_arguments)]
    fn decode_qkv(
        qkv: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        rope: [FloatTensor<Self>; 2],
        partner: IntTensor<Self>,
        slots: IntTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        heads: usize,
    ) -> [FloatTensor<Self>; 3];

    /// `[rows, heads, head_dim]`: each row's query `q [rows, heads, head_dim]` attending over
    /// the first `len` slots of the caches with additive `bias [rows, len]` (f32, −∞ =
    /// masked) and scores scaled by `scale`; query head `h` reads kv head `h / (heads /
    /// kv_heads)`.
    fn decode_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// `silu(gate) · up` element-wise (same shapes).
    fn silu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `[sum, y]` for `x`, `delta [rows, dim]` and gain `weight [dim]`: the residual sum
    /// `x + delta` and its RMSNorm `sum / √(mean(sum²) + eps) · weight`, in x's dtype.
    fn add_rms_norm(
        x: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> [FloatTensor<Self>; 2];

    /// `[rows, 3]` f32 (token, log-prob, finite flag) drawn from `logits [rows, vocab]` with
    /// `params [rows, 2]` = `(1 / temperature, u)` per row, f32 (see [`draw_rows`]).
    fn draw_rows(logits: FloatTensor<Self>, params: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `tensor` contiguous and uniquely owned, so a kernel may write into it.
fn writable<R: CubeRuntime>(tensor: CubeTensor<R>) -> CubeTensor<R> {
    let tensor = into_contiguous(tensor);
    if tensor.can_mut() {
        tensor
    } else {
        tensor.copy()
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> DecodeBackend
    for CubeBackend<R, F, I, BT>
{
    fn decode_qkv(
        qkv: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        [cos, sin_signed]: [FloatTensor<Self>; 2],
        partner: IntTensor<Self>,
        slots: IntTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        heads: usize,
    ) -> [FloatTensor<Self>; 3] {
        let (k_cache, v_cache) = (writable(k_cache), writable(v_cache));
        let [qkv, cos, sin_signed] = [qkv, cos, sin_signed].map(into_contiguous);
        let has_bias = bias.is_some();
        // Without a bias the kernel never reads its bias argument: any tensor will do.
        let bias = into_contiguous(bias.unwrap_or_else(|| qkv.clone()));
        let [partner, slots] = [partner, slots].map(into_contiguous);
        let [rows, kv_heads, max_len, head_dim] = k_cache.shape().dims::<4>();
        let (client, device) = (qkv.client.clone(), qkv.device.clone());
        let q = empty_device_contiguous_dtype(
            client.clone(),
            device,
            Shape::new([rows, heads, head_dim]),
            qkv.dtype,
        );
        let elements = qkv.shape().num_elements();
        let cube_dim = CubeDim::new_1d(ELEMENTWISE_UNITS);
        let dtypes = [qkv.dtype.into(), slots.dtype.into()];
        decode_qkv::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, elements, cube_dim),
            cube_dim,
            qkv.into_tensor_arg(),
            bias.into_tensor_arg(),
            cos.into_tensor_arg(),
            sin_signed.into_tensor_arg(),
            partner.into_tensor_arg(),
            slots.into_tensor_arg(),
            q.clone().into_tensor_arg(),
            k_cache.clone().into_tensor_arg(),
            v_cache.clone().into_tensor_arg(),
            heads as u32,
            kv_heads as u32,
            max_len as u32,
            head_dim as u32,
            has_bias,
            dtypes,
        );
        [q, k_cache, v_cache]
    }

    fn decode_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let [q, k_cache, v_cache, bias] = [q, k_cache, v_cache, bias].map(into_contiguous);
        let [rows, heads, head_dim] = q.shape().dims::<3>();
        let [_, kv_heads, max_len, _] = k_cache.shape().dims::<4>();
        let len = bias.shape().dims::<2>()[1];
        let (client, device) = (q.client.clone(), q.device.clone());
        let out = empty_device_contiguous_dtype(client.clone(), device, q.shape(), q.dtype);
        let dtype = q.dtype.into();
        let group = heads / kv_heads;
        if let Some(GroupedLaunch { units, chunk }) =
            grouped_launch(rows, kv_heads, group, head_dim)
        {
            decode_attention_grouped::launch::<R>(
                &client,
                CubeCount::new_1d((rows * kv_heads) as u32),
                CubeDim::new_1d(units as u32),
                q.into_tensor_arg(),
                k_cache.into_tensor_arg(),
                v_cache.into_tensor_arg(),
                bias.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                heads as u32,
                group as u32,
                max_len as u32,
                len as u32,
                head_dim as u32,
                scale,
                units,
                chunk,
                group * head_dim,
                chunk * (head_dim + 1),
                group * chunk,
                dtype,
            );
            return out;
        }
        let units = attention_units(head_dim);
        decode_attention::launch::<R>(
            &client,
            CubeCount::new_1d((rows * heads) as u32),
            CubeDim::new_1d(units as u32),
            q.into_tensor_arg(),
            k_cache.into_tensor_arg(),
            v_cache.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            heads as u32,
            (heads / kv_heads) as u32,
            max_len as u32,
            len as u32,
            head_dim as u32,
            scale,
            units,
            dtype,
        );
        out
    }

    fn silu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let [gate, up] = [gate, up].map(into_contiguous);
        let (client, device) = (gate.client.clone(), gate.device.clone());
        let out = empty_device_contiguous_dtype(client.clone(), device, gate.shape(), gate.dtype);
        let cube_dim = CubeDim::new_1d(ELEMENTWISE_UNITS);
        let dtype = gate.dtype.into();
        silu_mul::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, gate.shape().num_elements(), cube_dim),
            cube_dim,
            gate.into_tensor_arg(),
            up.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            dtype,
        );
        out
    }

    fn add_rms_norm(
        x: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> [FloatTensor<Self>; 2] {
        let [x, delta, weight] = [x, delta, weight].map(into_contiguous);
        let [rows, dim] = x.shape().dims::<2>();
        let (client, device) = (x.client.clone(), x.device.clone());
        let [sum, y] = [(); 2].map(|_| {
            empty_device_contiguous_dtype(client.clone(), device.clone(), x.shape(), x.dtype)
        });
        let cube_dim = CubeDim::new_1d(NORM_UNITS as u32);
        let dtypes = [x.dtype.into(), weight.dtype.into()];
        add_rms_norm_forward::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * NORM_UNITS, cube_dim),
            cube_dim,
            x.into_tensor_arg(),
            delta.into_tensor_arg(),
            weight.into_tensor_arg(),
            sum.clone().into_tensor_arg(),
            y.clone().into_tensor_arg(),
            rows as u32,
            dim as u32,
            eps,
            NORM_UNITS,
            dtypes,
        );
        [sum, y]
    }

    fn draw_rows(logits: FloatTensor<Self>, params: FloatTensor<Self>) -> FloatTensor<Self> {
        let logits = into_contiguous(logits);
        let params = into_contiguous(cast_f32(params));
        let [rows, vocab] = logits.shape().dims::<2>();
        let (client, device) = (logits.client.clone(), logits.device.clone());
        let out = empty_device_contiguous_dtype(
            client.clone(),
            device,
            Shape::new([rows, DRAW_OUT]),
            DType::F32,
        );
        let dtype = logits.dtype.into();
        draw_rows::launch::<R>(
            &client,
            CubeCount::new_1d(rows as u32),
            CubeDim::new_1d(DRAW_UNITS as u32),
            logits.into_tensor_arg(),
            params.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            vocab as u32,
            DRAW_UNITS,
            dtype,
        );
        out
    }
}

impl<B: FusionBackend + DecodeBackend> DecodeBackend for Fusion<B> {
    fn decode_qkv(
        qkv: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        [cos, sin_signed]: [FloatTensor<Self>; 2],
        partner: IntTensor<Self>,
        slots: IntTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        heads: usize,
    ) -> [FloatTensor<Self>; 3] {
        let [rows, _, _, head_dim] = k_cache.shape.dims::<4>();
        let like_cache = (k_cache.shape.clone(), k_cache.dtype);
        let like_q = (Shape::new([rows, heads, head_dim]), qkv.dtype);
        let has_bias = bias.is_some();
        // A fixed input list: without a bias, qkv stands in (never read).
        let bias = bias.unwrap_or_else(|| qkv.clone());
        let body: Body<B> = Arc::new(move |desc, handles| {
            let ([qkv, bias, cos, sin, partner, slots, k_cache, v_cache], [q_ir, k_ir, v_ir]) =
                desc.as_fixed::<8, 3>();
            let [qkv, bias, cos, sin, k_cache, v_cache] =
                [qkv, bias, cos, sin, k_cache, v_cache].map(|t| handles.get_float_tensor::<B>(t));
            let [partner, slots] = [partner, slots].map(|t| handles.get_int_tensor::<B>(t));
            let bias = has_bias.then_some(bias);
            let [q, k, v] = B::decode_qkv(
                qkv,
                bias,
                [cos, sin],
                partner,
                slots,
                k_cache,
                v_cache,
                heads,
            );
            for (ir, t) in [(q_ir, q), (k_ir, k), (v_ir, v)] {
                handles.register_float_tensor::<B>(&ir.id, t);
            }
        });
        let inputs = vec![qkv, bias, cos, sin_signed, partner, slots, k_cache, v_cache];
        let outs = vec![like_q, like_cache.clone(), like_cache];
        outputs(register::<B>("decode_qkv", inputs, outs, body))
    }

    fn decode_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let like_q = (q.shape.clone(), q.dtype);
        let [out] = register_float::<B, 4, 1>(
            "decode_attention",
            [q, k_cache, v_cache, bias],
            [like_q],
            move |[q, k, v, bias]| [B::decode_attention(q, k, v, bias, scale)],
        );
        out
    }

    fn silu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let like_gate = (gate.shape.clone(), gate.dtype);
        let [out] = register_float::<B, 2, 1>("silu_mul", [gate, up], [like_gate], |[g, u]| {
            [B::silu_mul(g, u)]
        });
        out
    }

    fn add_rms_norm(
        x: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> [FloatTensor<Self>; 2] {
        let like_x = (x.shape.clone(), x.dtype);
        register_float::<B, 3, 2>(
            "add_rms_norm",
            [x, delta, weight],
            [like_x.clone(), like_x],
            move |[x, delta, weight]| B::add_rms_norm(x, delta, weight, eps),
        )
    }

    fn draw_rows(logits: FloatTensor<Self>, params: FloatTensor<Self>) -> FloatTensor<Self> {
        let like_out = (Shape::new([logits.shape[0], DRAW_OUT]), DType::F32);
        let [out] =
            register_float::<B, 2, 1>("draw_rows", [logits, params], [like_out], |[l, p]| {
                [B::draw_rows(l, p)]
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_cover_the_head_and_halve_evenly() {
        for head_dim in [16, 32, 48, 64, 80, 96, 112, 128] {
            let units = attention_units(head_dim);
            assert!(units >= head_dim && units >= 64 && units.is_power_of_two());
        }
        assert_eq!(attention_units(64), 64);
    }

    #[test]
    fn grouped_chunks_fit_shared_memory() {
        // Qwen2.5-0.5B's group of 7 at head dim 64: 32-slot chunks.
        assert_eq!(grouped_chunk(7, 64), Some(32));
        // Group 16 at head dim 128 fits with 16-slot chunks; 32 does not fit at all.
        assert_eq!(grouped_chunk(16, 128), Some(16));
        assert_eq!(grouped_chunk(32, 128), None);
        if std::env::var_os("LM_DECODE_GROUPED").is_none() {
            assert_eq!(grouped_launch(1, 2, 7, 64), None, "too few cubes");
            let many = grouped_launch(32, 2, 7, 64);
            assert_eq!(
                many,
                Some(GroupedLaunch {
                    units: 128,
                    chunk: 32
                })
            );
        }
        assert_eq!(attention_units(80), 128);
    }
}
