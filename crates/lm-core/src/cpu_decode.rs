//! The decode step's q/k/v and attention on the plain burn-ndarray backend, as the CUDA and
//! wgpu kernels of `lm-kernels/src/decode` compute them (see [`crate::kernels::DecodeQkv`]):
//! plain loops over the arrays instead of ~20 tensor ops, each with its own allocation,
//! per layer and step. The KV cache is written in place (it is uniquely owned between
//! steps: [`crate::pretrained::kv_cache::LayerKv`] moves it out before the call).
//!
//! Only `NdArray<f32>` takes this path (see [`supports`]).

use burn::backend::NdArray;
use burn::backend::ndarray::{NdArrayTensor, SharedArray};
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive, backend::Backend};
use rayon::prelude::*;

use crate::cpu_dot::dot;
use crate::cpu_linear::{downcast as cast, row_major};
use crate::kernels::DecodeQkv;

type Cpu = NdArray<f32>;

/// Below this many multiply-adds an attention call runs on one thread (rayon's task
/// overhead would dominate).
const PARALLEL_WORK: usize = 1 << 16;

/// Whether `B` takes this module's path.
pub fn supports<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Cpu>()
}

fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    row_major(t).unwrap_or_default()
}

fn ints(t: Tensor<Cpu, 1, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap_or_default()
}

/// A cache tensor as its owned, contiguous array (no copy when it is uniquely owned and
/// contiguous, as the cache is between steps).
fn cache_array(t: Tensor<Cpu, 4>) -> Option<SharedArray<f32>> {
    let NdArrayTensor::F32(storage) = t.into_primitive().tensor() else {
        return None;
    };
    let array = storage.into_owned();
    Some(if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned().into_shared()
    })
}

fn cache_tensor(array: SharedArray<f32>) -> Tensor<Cpu, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(NdArrayTensor::from(array)))
}

type QkvOut<B> = (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>);

/// [`crate::kernels::decode_qkv`] on `NdArray<f32>`; `None` for other backends.
pub fn decode_qkv<B: Backend>(
    step: DecodeQkv<B>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
) -> Option<QkvOut<B>> {
    let (k_cache, v_cache) = (cast::<_, Tensor<Cpu, 4>>(k_cache)?, cast(v_cache)?);
    let [rows, kv_heads, max_len, hd] = k_cache.dims();
    let device = k_cache.device();
    let heads = step.heads;
    let width = (heads + 2 * kv_heads) * hd;
    let mut qkv = values(cast::<_, Tensor<Cpu, 2>>(step.qkv)?);
    if let Some(bias) = step.bias {
        let bias = values(cast::<_, Tensor<Cpu, 1>>(bias)?);
        for row in qkv.chunks_mut(width) {
            row.iter_mut().zip(&bias).for_each(|(x, b)| *x += b);
        }
    }
    let cos = values(cast::<_, Tensor<Cpu, 2>>(step.cos)?);
    let sin = values(cast::<_, Tensor<Cpu, 2>>(step.sin_signed)?);
    let partner = ints(cast(step.partner)?);
    let slots = ints(cast(step.slots)?);
    let (mut k, mut v) = (cache_array(k_cache)?, cache_array(v_cache)?);
    let (k_mem, v_mem) = (
        k.as_slice_memory_order_mut()?,
        v.as_slice_memory_order_mut()?,
    );
    let mut q = vec![0f32; rows * heads * hd];
    let mut rotated = vec![0f32; hd];
    for r in 0..rows {
        let slot = usize::try_from(slots[r]).ok().filter(|&s| s < max_len);
        let (c, s) = (&cos[r * hd..][..hd], &sin[r * hd..][..hd]);
        for head in 0..heads + 2 * kv_heads {
            let x = &qkv[r * width + head * hd..][..hd];
            let out: &[f32] = if head < heads + kv_heads {
                for d in 0..hd {
                    rotated[d] = x[d] * c[d] + x[partner[d] as usize] * s[d];
                }
                &rotated
            } else {
                x
            };
            if head < heads {
                q[(r * heads + head) * hd..][..hd].copy_from_slice(out);
            } else if let Some(slot) = slot {
                let kv_head = (head - heads) % kv_heads;
                let at = ((r * kv_heads + kv_head) * max_len + slot) * hd;
                let cache = if head < heads + kv_heads {
                    &mut *k_mem
                } else {
                    &mut *v_mem
                };
                cache[at..at + hd].copy_from_slice(out);
            }
        }
    }
    let q = Tensor::<Cpu, 3>::from_data(TensorData::new(q, [rows, heads, hd]), &device);
    Some((cast(q)?, cast(cache_tensor(k))?, cast(cache_tensor(v))?))
}

/// [`crate::kernels::decode_attention`] on `NdArray<f32>`; `None` for other backends.
pub fn decode_attention<B: Backend>(
    q: Tensor<B, 3>,
    k_cache: Tensor<B, 4>,
    v_cache: Tensor<B, 4>,
    bias: Tensor<B, 2>,
    scale: f32,
) -> Option<Tensor<B, 3>> {
    let q: Tensor<Cpu, 3> = cast(q)?;
    let [rows, heads, hd] = q.dims();
    let device = q.device();
    let q = values(q);
    let bias: Tensor<Cpu, 2> = cast(bias)?;
    let len = bias.dims()[1];
    let bias = values(bias);
    let (k, v) = (cache_array(cast(k_cache)?)?, cache_array(cast(v_cache)?)?);
    let [_, kv_heads, max_len, _] = <[usize; 4]>::try_from(k.shape()).ok()?;
    let (k, v) = (k.as_slice_memory_order()?, v.as_slice_memory_order()?);
    let group = heads / kv_heads;
    let mut out = vec![0f32; rows * heads * hd];
    let one = |(row_head, out): (usize, &mut [f32])| {
        let (r, h) = (row_head / heads, row_head % heads);
        let query = &q[row_head * hd..][..hd];
        let base = (r * kv_heads + h / group) * max_len * hd;
        let mask = &bias[r * len..][..len];
        let mut scores: Vec<f32> = (0..len)
            .map(|u| {
                if mask[u] == f32::NEG_INFINITY {
                    f32::NEG_INFINITY
                } else {
                    dot(query, &k[base + u * hd..][..hd]) * scale + mask[u]
                }
            })
            .collect();
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - top).exp();
            total += *s;
        }
        for (u, &p) in scores.iter().enumerate() {
            if p != 0.0 {
                let value = &v[base + u * hd..][..hd];
                out.iter_mut().zip(value).for_each(|(o, x)| *o += p * x);
            }
        }
        out.iter_mut().for_each(|o| *o /= total);
    };
    if rows * heads * len * hd >= PARALLEL_WORK {
        out.par_chunks_mut(hd).enumerate().for_each(one);
    } else {
        out.chunks_mut(hd).enumerate().for_each(one);
    }
    cast(Tensor::<Cpu, 3>::from_data(
        TensorData::new(out, [rows, heads, hd]),
        &device,
    ))
}
