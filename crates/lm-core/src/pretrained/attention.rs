//! Grouped-query self-attention with optional q/k/v biases, over a KV cache.

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::kv_cache::{CacheWrite, LayerKv};
use crate::functional::softmax;
use crate::layers::{Linear, Rope};

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
#[derive(Module, Debug)]
pub struct GroupedQueryAttention<B: Backend> {
    pub q_proj: Projection<B>,
    pub k_proj: Projection<B>,
    pub v_proj: Projection<B>,
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

impl<B: Backend> GroupedQueryAttention<B> {
    /// `x [rows, T, d]`, `positions [rows, T]`, `bias [rows, 1, T, L]` from [`SlotMask::bias`]. Without a
    /// cache the keys are the `T` new tokens themselves (slot = index).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        positions: Tensor<B, 2, Int>,
        rope: &Rope<B>,
        bias: Tensor<B, 4>,
        cache: Option<CacheStep<'_, B>>,
    ) -> Tensor<B, 3> {
        let [rows, t, _] = x.dims();
        let (heads, kv_heads, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let group = heads / kv_heads;

        // q: [rows, T, H·hd] → [rows, KV, group, T, hd]; positions broadcast as [rows, 1, 1, T].
        let q = self
            .q_proj
            .forward(x.clone())
            .reshape([rows, t, kv_heads, group, hd])
            .permute([0, 2, 3, 1, 4]);
        let q = rope.forward(q, positions.clone().reshape([rows, 1, 1, t]));
        let q: Tensor<B, 4> = q.reshape([rows, kv_heads, group * t, hd]);

        // k, v: [rows, T, KV·hd] → [rows, KV, T, hd] (the cache layout).
        let split = |y: Tensor<B, 3>| -> Tensor<B, 4> {
            y.reshape([rows, t, kv_heads, hd]).swap_dims(1, 2)
        };
        let k = rope.forward(
            split(self.k_proj.forward(x.clone())),
            positions.reshape([rows, 1, t]),
        );
        let v = split(self.v_proj.forward(x));
        let key_len = bias.dims()[3];
        let (k, v) = match cache {
            Some(step) => step.kv.write(k, v, step.write, key_len),
            None => (k, v),
        };

        // [rows, KV, group·T, L] viewed as [rows, KV, group, T, L] so `bias [rows, 1, 1, T, L]`
        // broadcasts over the kv heads and the query heads of each group.
        let scores: Tensor<B, 5> = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .reshape([rows, kv_heads, group, t, key_len]);
        let scores: Tensor<B, 4> =
            (scores + bias.unsqueeze_dim::<5>(2)).reshape([rows, kv_heads, group * t, key_len]);
        let out = softmax(scores, 3).matmul(v); // [rows, KV, group·T, hd]
        let out: Tensor<B, 3> = out
            .reshape([rows, kv_heads, group, t, hd])
            .permute([0, 3, 1, 2, 4])
            .reshape([rows, t, heads * hd]);
        self.o_proj.forward(out)
    }
}
