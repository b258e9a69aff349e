use burn::module::Module;
use burn::tensor::{Int, Tensor, backend::Backend};

use super::{MultiHeadSelfAttention, RmsNorm, Rope, SwiGlu};
use crate::config::TransformerConfig;
use crate::init::Initializer;

/// Pre-norm block: `h = x + attn(ln1(x))`, `y = h + ffn(ln2(h))`.
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    pub attn: MultiHeadSelfAttention<B>,
    pub ln1: RmsNorm<B>,
    pub ln2: RmsNorm<B>,
    pub ffn: SwiGlu<B>,
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
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>, positions: Option<Tensor<B, 2, Int>>) -> Tensor<B, 3> {
        let h = x.clone() + self.attn.forward(self.ln1.forward(x), positions);
        h.clone() + self.ffn.forward(self.ln2.forward(h))
    }
}
