use burn::module::Module;
use burn::tensor::{DType, Int, Tensor, backend::Backend};

use super::{MultiHeadSelfAttention, RmsNorm, Rope, SwiGlu};
use crate::config::TransformerConfig;
use crate::init::Initializer;
use crate::precision::to_dtype;

/// Pre-norm block: `h = x + attn(ln1(x))`, `y = h + ffn(ln2(h))`.
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    pub attn: MultiHeadSelfAttention<B>,
    pub ln1: RmsNorm<B>,
    pub ln2: RmsNorm<B>,
    pub ffn: SwiGlu<B>,
    /// The dtype attention and the FFN compute in (the residual stream keeps its own).
    #[module(skip)]
    pub compute: DType,
}

impl<B: Backend> TransformerBlock<B> {
    /// Builds a block with RoPE over `cfg.context_length` positions (cfg assumed validated).
    pub fn new(cfg: &TransformerConfig, init: &mut Initializer, device: &B::Device) -> Self {
        let rope = Rope::new(cfg.rope_theta, cfg.d_head(), cfg.context_length, device);
        Self {
            attn: MultiHeadSelfAttention::new(cfg.d_model, cfg.num_heads, Some(rope), init, device)
                .with_kernel(cfg.attention),
            ln1: RmsNorm::new(cfg.d_model, cfg.eps, device),
            ln2: RmsNorm::new(cfg.d_model, cfg.eps, device),
            ffn: SwiGlu::new(cfg.d_model, cfg.d_ff, init, device),
            compute: cfg.precision.compute_dtype(),
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>, positions: Option<Tensor<B, 2, Int>>) -> Tensor<B, 3> {
        let (residual, compute) = (x.dtype(), self.compute);
        let attn = self
            .attn
            .forward(to_dtype(self.ln1.forward(x.clone()), compute), positions);
        let h = x + to_dtype(attn, residual);
        let ffn = self
            .ffn
            .forward(to_dtype(self.ln2.forward(h.clone()), compute));
        h + to_dtype(ffn, residual)
    }
}
