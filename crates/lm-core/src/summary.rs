//! A `model.summary()`-style report: parameters per tensor, FLOPs per token and activation
//! memory, with the handout's accounting (a matmul of `[m,k]·[k,n]` costs `2mkn` FLOPs).

use std::fmt;

use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::config::TransformerConfig;
use crate::params::named_params;

/// Counts for one model configuration at a given batch size and sequence length.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub config: TransformerConfig,
    /// `(name, shape, count)` for every parameter, in name order.
    pub tensors: Vec<(String, Vec<usize>, usize)>,
    pub total_params: usize,
    /// Parameters outside the token embedding (the handout's "non-embedding" count).
    pub non_embedding_params: usize,
    pub seq_len: usize,
    pub batch_size: usize,
    /// Forward-pass matmul FLOPs per token at `seq_len` (attention averaged over positions
    /// as the handout does: every query against all `seq_len` keys).
    pub forward_flops_per_token: f64,
    /// Forward + backward (backward = 2 × forward).
    pub train_flops_per_token: f64,
    /// Activations kept for backward in f32 for one batch, in bytes.
    pub activation_bytes: f64,
    /// Parameters + gradients + AdamW moments in f32, in bytes.
    pub train_state_bytes: f64,
}

impl ModelSummary {
    pub fn new<B: Backend, M: Module<B>>(
        model: &M,
        config: &TransformerConfig,
        batch_size: usize,
        seq_len: usize,
    ) -> Self {
        let tensors: Vec<_> = named_params(model)
            .into_iter()
            .map(|(name, t)| {
                let n = t.numel();
                (name, t.shape, n)
            })
            .collect();
        let total_params: usize = tensors.iter().map(|t| t.2).sum();
        let embedding = config.vocab_size * config.d_model;
        let (d, f, t, v, l) = sizes(config, seq_len);
        let h = config.num_heads as f64;
        let forward = forward_flops_per_token(config, seq_len);
        let tokens = (batch_size * seq_len) as f64;
        // Per layer: 2 norms' inputs, q/k/v, attention output, projection input (7·d); scores
        // and their softmax (2·h·T per token); w1, w3 outputs, silu and product (4·f) — the
        // handout's list. Then final norm, logits and their softmax.
        let per_token_layer = 7.0 * d + 2.0 * h * t + 4.0 * f;
        let activations = tokens * (l * per_token_layer + d + 2.0 * v);
        Self {
            config: config.clone(),
            non_embedding_params: total_params - embedding.min(total_params),
            tensors,
            total_params,
            seq_len,
            batch_size,
            forward_flops_per_token: forward,
            train_flops_per_token: 3.0 * forward,
            activation_bytes: 4.0 * activations,
            train_state_bytes: 4.0 * 4.0 * total_params as f64,
        }
    }
}

/// Forward-pass matmul FLOPs per token at `seq_len` (attention averaged as the handout does:
/// every query against all `seq_len` keys).
pub fn forward_flops_per_token(config: &TransformerConfig, seq_len: usize) -> f64 {
    let (d, f, t, v, l) = sizes(config, seq_len);
    let per_layer = 2.0 * 4.0 * d * d // q, k, v, output projections
        + 2.0 * 2.0 * t * d // q·kᵀ and softmax·v
        + 2.0 * 3.0 * d * f; // w1, w3, w2
    l * per_layer + 2.0 * d * v
}

/// `(d_model, d_ff, seq_len, vocab_size, num_layers)` as floats for the formulas.
fn sizes(config: &TransformerConfig, seq_len: usize) -> (f64, f64, f64, f64, f64) {
    (
        config.d_model as f64,
        config.d_ff as f64,
        seq_len as f64,
        config.vocab_size as f64,
        config.num_layers as f64,
    )
}

fn human(x: f64, unit: &str) -> String {
    let (scaled, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(s, _)| x >= *s)
        .map(|(s, p)| (x / s, p))
        .unwrap_or((x, ""));
    format!("{scaled:.2} {prefix}{unit}")
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<40} {:>18} {:>12}", "parameter", "shape", "count")?;
        for (name, shape, n) in &self.tensors {
            writeln!(f, "{name:<40} {:>18} {n:>12}", format!("{shape:?}"))?;
        }
        writeln!(
            f,
            "total parameters: {} ({})",
            self.total_params,
            human(self.total_params as f64, "")
        )?;
        writeln!(f, "non-embedding parameters: {}", self.non_embedding_params)?;
        writeln!(
            f,
            "FLOPs per token at seq {}: forward {}, training step {}",
            self.seq_len,
            human(self.forward_flops_per_token, "FLOP"),
            human(self.train_flops_per_token, "FLOP")
        )?;
        writeln!(
            f,
            "memory (f32, batch {} × seq {}): activations {}, params+grads+AdamW {}",
            self.batch_size,
            self.seq_len,
            human(self.activation_bytes, "B"),
            human(self.train_state_bytes, "B")
        )
    }
}
