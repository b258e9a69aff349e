use burn::module::Module;
use burn::tensor::{Bool, DType, Int, Tensor, backend::Backend};

use super::{Linear, Rope, expect_last_dim};
use crate::config::AttentionKernel;
use crate::functional::{logsumexp, softmax};
use crate::init::Initializer;
use crate::kernels::matmul;
use crate::precision::to_dtype;

/// `softmax(q kᵀ / √d_k + M) v` with `M = −∞` where `mask` is false (true = attend).
///
/// `q [..., n_q, d_k]`, `k [..., n_k, d_k]`, `v [..., n_k, d_v]`, `mask [..., n_q, n_k]` with the
/// same leading dims (or dims of 1 that broadcast). A fully masked row gives NaN.
pub fn scaled_dot_product_attention<B: Backend, const D: usize>(
    q: Tensor<B, D>,
    k: Tensor<B, D>,
    v: Tensor<B, D>,
    mask: Option<Tensor<B, D, Bool>>,
) -> Tensor<B, D> {
    let d_k = q.dims()[D - 1];
    expect_last_dim("scaled_dot_product_attention", "k", &k.dims(), d_k);
    let scores = matmul(q, k.swap_dims(D - 2, D - 1)).div_scalar((d_k as f64).sqrt());
    let scores = match mask {
        Some(mask) => {
            let mask = mask.expand(scores.shape());
            scores.mask_fill(mask.bool_not(), f32::NEG_INFINITY)
        }
        None => scores,
    };
    // Softmax in f32 whatever the compute dtype (bf16 sums lose too much).
    let probs = softmax(to_dtype(scores, DType::F32), D - 1);
    let dtype = v.dtype();
    matmul(to_dtype(probs, dtype), v)
}

/// `[seq, seq]` mask, true where query `i` may attend key `j` (`j ≤ i`).
pub fn causal_mask<B: Backend>(seq: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let rows = Tensor::<B, 1, Int>::arange(0..seq as i64, device).reshape([seq, 1]);
    let cols = Tensor::<B, 1, Int>::arange(0..seq as i64, device).reshape([1, seq]);
    rows.expand([seq, seq])
        .greater_equal(cols.expand([seq, seq]))
}

/// Plain attention over `[batch, heads, seq, d]` that also returns the natural-log
/// logsumexp of each scaled (and, when `causal`, masked) score row, `[batch, heads, seq]`:
/// the FlashAttention-2 contract computed with tensor ops (the reference for the kernel).
pub fn attention_with_lse<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: f64,
) -> (Tensor<B, 4>, Tensor<B, 3>) {
    let seq = q.dims()[2];
    let scores = matmul(q, k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = if causal {
        let mask: Tensor<B, 4, Bool> = causal_mask::<B>(seq, &scores.device()).unsqueeze();
        let mask = mask.expand(scores.shape()).bool_not();
        scores.mask_fill(mask, f32::NEG_INFINITY)
    } else {
        scores
    };
    let lse = logsumexp(scores.clone(), 3);
    let probs = (scores - lse.clone()).exp();
    (matmul(probs, v), lse.squeeze_dim(3))
}

/// Causal attention over `[batch, heads, seq, d_head]` with scale `1/√d_head`: the
/// FlashAttention-2 kernel when `flash` is set and this build has it for `B`, else
/// `softmax(q kᵀ/√d + causal mask) v` from tensor ops.
pub fn causal_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    flash: bool,
) -> Tensor<B, 4> {
    if flash && crate::kernels::flash_available::<B>() {
        // Shapes come from our own projections, so the kernel's input checks cannot fail.
        let (o, _lse) = crate::kernels::flash_attention(q, k, v, true, None)
            .expect("flash attention kernel")
            .expect("inputs checked by the caller");
        return o;
    }
    let seq = q.dims()[2];
    let mask: Tensor<B, 4, Bool> = causal_mask::<B>(seq, &q.device()).unsqueeze();
    scaled_dot_product_attention(q, k, v, Some(mask))
}

/// Causal multi-head self-attention; heads are contiguous slices of the feature dim.
#[derive(Module, Debug)]
pub struct MultiHeadSelfAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub output_proj: Linear<B>,
    pub num_heads: usize,
    /// Applied to every head of Q and K when present.
    pub rope: Option<Rope<B>>,
    /// Use the FlashAttention-2 kernel where the backend has one (see [`causal_attention`]).
    pub flash: bool,
}

impl<B: Backend> MultiHeadSelfAttention<B> {
    pub fn new(
        d_model: usize,
        num_heads: usize,
        rope: Option<Rope<B>>,
        init: &mut Initializer,
        device: &B::Device,
    ) -> Self {
        Self {
            q_proj: Linear::new(d_model, d_model, init, device),
            k_proj: Linear::new(d_model, d_model, init, device),
            v_proj: Linear::new(d_model, d_model, init, device),
            output_proj: Linear::new(d_model, d_model, init, device),
            num_heads,
            rope,
            flash: true,
        }
    }

    /// Chooses the attention implementation (the default is [`AttentionKernel::Auto`]).
    pub fn with_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.flash = kernel == AttentionKernel::Auto;
        self
    }

    /// `x [..., seq, d_model]`; `positions [..., seq]` (or `[seq]`) are the token positions for
    /// RoPE, `0..seq` when `None`. Ignored without RoPE.
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        positions: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, D> {
        let dims = x.dims();
        let d_model = self.q_proj.d_in();
        expect_last_dim("MultiHeadSelfAttention", "x", &dims, d_model);
        assert!(D >= 2, "MultiHeadSelfAttention: x needs a sequence dim");
        let seq = dims[D - 2];
        let batch: usize = dims[..D - 2].iter().product();
        let (heads, d_head) = (self.num_heads, d_model / self.num_heads);
        let device = x.device();

        // [..., seq, d_model] -> [batch, heads, seq, d_head]
        let split = |t: Tensor<B, D>| -> Tensor<B, 4> {
            t.reshape([batch, seq, heads, d_head]).swap_dims(1, 2)
        };
        let mut q = split(self.q_proj.forward(x.clone()));
        let mut k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));

        if let Some(rope) = &self.rope {
            let positions = match positions {
                Some(p) => {
                    let p_dims = p.dims();
                    assert!(
                        p_dims[1] == seq && (p_dims[0] == batch || p_dims[0] == 1),
                        "MultiHeadSelfAttention: positions {p_dims:?} do not fit x {dims:?}"
                    );
                    p
                }
                None => Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]),
            };
            // Same rotation for every head: [batch|1, 1, seq] broadcasts over heads.
            let positions: Tensor<B, 3, Int> = positions.unsqueeze_dim(1);
            q = rope.forward(q, positions.clone());
            k = rope.forward(k, positions);
        }

        let heads_out = causal_attention(q, k, v, self.flash);
        let concat: Tensor<B, D> = heads_out.swap_dims(1, 2).reshape(dims);
        self.output_proj.forward(concat)
    }
}
