//! The CS336 Transformer language model.

use std::borrow::Cow;

use burn::module::Module;
use burn::tensor::{DType, Int, Tensor, backend::Backend};

use crate::config::TransformerConfig;
use crate::error::{LmError, Result};
use crate::init::Initializer;
use crate::layers::{Embedding, Linear, RmsNorm, TransformerBlock};
use crate::precision::to_dtype;

/// `token_embeddings → layers → ln_final → lm_head`, returning unnormalised logits.
///
/// Field names are the course's state-dict names, so parameter paths read
/// `layers.0.attn.q_proj.weight` etc. (see [`crate::params`]).
#[derive(Module, Debug)]
pub struct TransformerLm<B: Backend> {
    pub token_embeddings: Embedding<B>,
    pub layers: Vec<TransformerBlock<B>>,
    pub ln_final: RmsNorm<B>,
    pub lm_head: Linear<B>,
    pub context_length: usize,
    /// The dtype of the LM head's product (see [`crate::precision::Precision`]).
    #[module(skip)]
    pub compute: DType,
}

impl<B: Backend> TransformerLm<B> {
    /// A freshly initialised model; the seed fixes every weight on every backend.
    pub fn new(cfg: &TransformerConfig, seed: u64, device: &B::Device) -> Result<Self> {
        cfg.validate()?;
        cfg.precision.check_supported::<B>(device)?;
        crate::kernels::set_matmul_policy(cfg.matmul, cfg.precision);
        let mut init = Initializer::new(seed);
        let token_embeddings = Embedding::new(cfg.vocab_size, cfg.d_model, &mut init, device);
        let layers = (0..cfg.num_layers)
            .map(|_| TransformerBlock::new(cfg, &mut init, device))
            .collect();
        Ok(Self {
            token_embeddings,
            layers,
            ln_final: RmsNorm::new(cfg.d_model, cfg.eps, device),
            lm_head: Linear::new(cfg.d_model, cfg.vocab_size, &mut init, device),
            context_length: cfg.context_length,
            compute: cfg.precision.compute_dtype(),
        })
    }

    /// Computes the matrix products in `dtype` (what `precision` sets). Public so the
    /// mixed-precision plumbing can be tested on backends without bf16 (e.g. f64 on ndarray).
    pub fn with_compute_dtype(mut self, dtype: DType) -> Self {
        self.compute = dtype;
        for layer in &mut self.layers {
            layer.compute = dtype;
        }
        self
    }

    /// `input_ids [batch, seq]` → logits `[batch, seq, vocab]`, positions `0..seq`.
    ///
    /// Panics (with our message) when `seq > context_length`; use [`Self::try_forward`] on
    /// untrusted input.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.try_forward(input_ids)
            .unwrap_or_else(|e| panic!("TransformerLm: {e}"))
    }

    /// [`Self::forward`] returning an error for a sequence longer than the context.
    pub fn try_forward(&self, input_ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        self.try_forward_staged(input_ids, &mut Unchanged)
    }

    /// [`Self::try_forward`] with each stage (the embedding, each block, the final norm, the
    /// head) passed through `stages` just before it runs: distributed training hooks or
    /// gathers the stage's parameters there.
    pub fn try_forward_staged<S: StageRewrite<B>>(
        &self,
        input_ids: Tensor<B, 2, Int>,
        stages: &mut S,
    ) -> std::result::Result<Tensor<B, 3>, S::Error> {
        let dims = input_ids.dims();
        if dims[1] > self.context_length {
            return Err(LmError::shape(
                "input_ids",
                format!("[batch, seq ≤ context_length = {}]", self.context_length),
                &dims,
            )
            .into());
        }
        let embeddings = stages.rewrite("token_embeddings", &self.token_embeddings, None)?;
        let mut h = embeddings.forward::<2, 3>(input_ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let layer = stages.rewrite(&format!("layers.{i}"), layer, Some(&h))?;
            h = layer.forward(h, None);
        }
        let ln_final = stages.rewrite("ln_final", &self.ln_final, Some(&h))?;
        let lm_head = stages.rewrite("lm_head", &self.lm_head, Some(&h))?;
        // Logits leave in the residual dtype (f32), so the loss is always computed in f32.
        let residual = h.dtype();
        let normed = to_dtype(ln_final.forward(h), self.compute);
        Ok(to_dtype(lm_head.forward(normed), residual))
    }
}

/// What [`TransformerLm::try_forward_staged`] does to each stage before running it.
pub trait StageRewrite<B: Backend> {
    type Error: From<LmError>;
    /// `name` is the stage's parameter prefix (`token_embeddings`, `layers.3`, `ln_final`,
    /// `lm_head`); `input` the activation entering it (none for the embedding), which orders
    /// whatever the rewrite adds to the autodiff graph relative to the stage.
    fn rewrite<'m, M: Module<B>>(
        &mut self,
        name: &str,
        module: &'m M,
        input: Option<&Tensor<B, 3>>,
    ) -> std::result::Result<Cow<'m, M>, Self::Error>;
}

/// The plain forward: every stage as it is.
struct Unchanged;

impl<B: Backend> StageRewrite<B> for Unchanged {
    type Error = LmError;
    fn rewrite<'m, M: Module<B>>(
        &mut self,
        _: &str,
        module: &'m M,
        _: Option<&Tensor<B, 3>>,
    ) -> Result<Cow<'m, M>> {
        Ok(Cow::Borrowed(module))
    }
}
