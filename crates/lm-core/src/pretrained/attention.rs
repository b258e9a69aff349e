//! Grouped-query self-attention with optional q/k/v biases, over a KV cache.

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::kv_cache::{CacheWrite, LayerKv};
use crate::functional::softmax;
use crate::kernels::DecodeQkv;
use crate::kernels::{self, matmul};
use crate::layers::{Linear, RopeRows, RopeTables};
use crate::precision::to_dtype;

/// `y = x Wᵀ (+ b)`: the existing [`Linear`] plus Qwen2's optional bias.
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    pub linear: Linear<B>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Projection<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let y = self.linear.forward(x);
        match &self.bias {
            Some(b) => y + b.val().unsqueeze(),
            None => y,
        }
    }
}

/// Which slots each query may see. Query `t` of row `b` sits at slot `offsets[b] + t`; it
/// attends slot `u` iff `u` is its own slot, or `u` is earlier and `key_ok[b · len + u]`.
/// (A left-pad query thus sees only itself: finite, ignored, and no NaN can reach real
/// tokens through a pad's values.)
#[derive(Debug, Clone)]
pub struct SlotMask {
    pub offsets: Vec<usize>,
    pub key_ok: Vec<bool>,
    /// Slots visible to the queries (the key length `L`).
    pub len: usize,
}

impl SlotMask {
    /// Additive bias `[rows, 1, T, L]`: 0 where allowed, −∞ elsewhere. The query heads
    /// that share a key/value head broadcast over it, so it is uploaded once, not per head.
    pub fn bias<B: Backend>(&self, t: usize, device: &B::Device) -> Tensor<B, 4> {
        let (rows, len) = (self.offsets.len(), self.len);
        let mut bias = Vec::with_capacity(rows * t * len);
        for (b, &offset) in self.offsets.iter().enumerate() {
            let ok = &self.key_ok[b * len..(b + 1) * len];
            for q in 0..t {
                let slot = offset + q;
                bias.extend((0..len).map(|u| {
                    if u == slot || (u < slot && ok[u]) {
                        0f32
                    } else {
                        f32::NEG_INFINITY
                    }
                }));
            }
        }
        Tensor::from_data(TensorData::new(bias, [rows, 1, t, len]), device)
    }
}

/// Attention with `num_heads` query heads sharing `num_kv_heads` key/value heads
/// (query head `j` uses kv head `j / group`), half-split RoPE on q and k.
///
/// q, k and v are one projection (`qkv_proj`: Hugging Face's `q_proj`, `k_proj`, `v_proj`
/// rows stacked in that order, biases likewise), so a step runs one matmul and one bias add
/// instead of three of each; [`Self::qkv_parts`] splits it back for export.
#[derive(Module, Debug)]
pub struct GroupedQueryAttention<B: Backend> {
    pub qkv_proj: Projection<B>,
    pub o_proj: Linear<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// The KV cache of one layer and how this call writes into it.
pub struct CacheStep<'a, B: Backend> {
    pub kv: &'a mut LayerKv<B>,
    pub write: &'a CacheWrite<B>,
}

/// One of the projections stacked in a fused one, under its Hugging Face name.
pub struct ProjectionPart<B: Backend> {
    pub name: &'static str,
    /// `[d_out, d_in]`.
    pub weight: Tensor<B, 2>,
    pub bias: Option<Tensor<B, 1>>,
}

/// Hugging Face's names of the projections stacked in `qkv_proj`, in row order.
pub const QKV_NAMES: [&str; 3] = ["q_proj", "k_proj", "v_proj"];

impl<B: Backend> GroupedQueryAttention<B> {
    /// Output rows of q, k and v in `qkv_proj`, in [`QKV_NAMES`] order.
    pub fn qkv_widths(&self) -> [usize; 3] {
        let kv = self.num_kv_heads * self.head_dim;
        [self.num_heads * self.head_dim, kv, kv]
    }

    /// q, k and v, sliced out of `qkv_proj`.
    pub fn qkv_parts(&self) -> Vec<ProjectionPart<B>> {
        let mut start = 0;
        QKV_NAMES
            .iter()
            .zip(self.qkv_widths())
            .map(|(&name, width)| {
                let weight = self.qkv_proj.linear.weight.val().narrow(0, start, width);
                let bias = (self.qkv_proj.bias.as_ref()).map(|b| b.val().narrow(0, start, width));
                start += width;
                ProjectionPart { name, weight, bias }
            })
            .collect()
    }

    /// One token per row through the decode kernels: bias, RoPE and the cache write in one
    /// launch, the attention over the cache in another (about 20 tensor ops otherwise).
    fn decode_step(
        &self,
        x: Tensor<B, 3>,
        rope: RopeRows<B>,
        bias: Tensor<B, 4>,
        kv: &mut LayerKv<B>,
        slots: Tensor<B, 1, Int>,
    ) -> Tensor<B, 3> {
        let rows = x.dims()[0];
        let (heads, hd) = (self.num_heads, self.head_dim);
        let qkv: Tensor<B, 2> = self.qkv_proj.linear.forward(x).squeeze_dim(1);
        let qkv_bias = (self.qkv_proj.bias.as_ref()).map(|b| to_dtype(b.val(), qkv.dtype()));
        let step = DecodeQkv {
            qkv,
            bias: qkv_bias,
            cos: rope.cos,
            sin_signed: rope.sin_signed,
            partner: rope.partner,
            slots,
            heads,
        };
        let (q, k_cache, v_cache) = kv.decode_qkv(step);
        let key_len = bias.dims()[3];
        let scale = 1.0 / (hd as f32).sqrt();
        let mask = bias.reshape([rows, key_len]);
        let out = kernels::decode_attention(q, k_cache, v_cache, mask, scale)
            .expect("decode_step: has_decode_kernels was checked");
        self.o_proj.forward(out.reshape([rows, 1, heads * hd]))
    }

    /// `x [rows, T, d]`, `rope` at the tokens' positions, `bias [rows, 1, T, L]` from
    /// [`SlotMask::bias`]. Without a cache the keys are the `T` new tokens themselves
    /// (slot = index).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Tensor<B, 4>,
        mut cache: Option<CacheStep<'_, B>>,
    ) -> Tensor<B, 3> {
        let [rows, t, _] = x.dims();
        let (heads, kv_heads, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let group = heads / kv_heads;
        if t == 1
            && let Some(step) = &mut cache
            && let CacheWrite::PerRow(slots) = step.write
            && kernels::has_decode_kernels::<B>(hd)
            && let Some(rope_rows) = rope.one_token_rows()
        {
            let slots = slots.slots.clone();
            return self.decode_step(x, rope_rows, bias, step.kv, slots);
        }

        // [rows, T, (H + 2·KV)·hd] → heads [rows, T, H + 2·KV, hd]; q and k rotate together.
        let qkv: Tensor<B, 4> =
            self.qkv_proj
                .forward(x)
                .reshape([rows, t, heads + 2 * kv_heads, hd]);
        let qk = rope.apply(qkv.clone().narrow(2, 0, heads + kv_heads));
        let v = qkv.narrow(2, heads + kv_heads, kv_heads);

        // q: [rows, T, H, hd] → [rows, KV, group·T, hd] (query head = kv head · group + g).
        let q: Tensor<B, 4> = qk
            .clone()
            .narrow(2, 0, heads)
            .reshape([rows, t, kv_heads, group, hd])
            .permute([0, 2, 3, 1, 4])
            .reshape([rows, kv_heads, group * t, hd]);
        // k, v: [rows, T, KV, hd] → [rows, KV, T, hd] (the cache layout).
        let k = qk.narrow(2, heads, kv_heads).swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let key_len = bias.dims()[3];
        let (k, v) = match cache {
            Some(step) => step.kv.write(k, v, step.write, key_len),
            None => (k, v),
        };

        // [rows, KV, group·T, L] viewed as [rows, KV, group, T, L] so `bias [rows, 1, 1, T, L]`
        // broadcasts over the kv heads and the query heads of each group.
        let scores: Tensor<B, 5> = matmul(q, k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .reshape([rows, kv_heads, group, t, key_len]);
        let scores: Tensor<B, 4> =
            (scores + bias.unsqueeze_dim::<5>(2)).reshape([rows, kv_heads, group * t, key_len]);
        let out = matmul(softmax(scores, 3), v); // [rows, KV, group·T, hd]
        let out: Tensor<B, 3> = out
            .reshape([rows, kv_heads, group, t, hd])
            .permute([0, 3, 1, 2, 4])
            .reshape([rows, t, heads * hd]);
        self.o_proj.forward(out)
    }
}
