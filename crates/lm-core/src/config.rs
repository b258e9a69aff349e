//! The model's hyper-parameters, with the course's field names.

use serde::{Deserialize, Serialize};

use crate::error::{LmError, Result};
pub use crate::precision::Precision;

/// Hyper-parameters of [`crate::TransformerLm`], named as in the CS336 handout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    pub vocab_size: usize,
    pub context_length: usize,
    pub d_model: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon (inside the square root).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// `auto`: the FlashAttention-2 kernel where the backend has one (wgpu, cuda), else the
    /// plain tensor-op attention; `plain`: always the plain one.
    #[serde(default)]
    pub attention: AttentionKernel,
    /// `f32` (default) or `bf16-mixed`: bf16 matrix products over f32 weights, see
    /// [`Precision`].
    #[serde(default)]
    pub precision: Precision,
    /// `auto`: matrix products through cuBLASLt on the CUDA backend, burn's matmul elsewhere;
    /// `burn`: always burn's matmul.
    #[serde(default)]
    pub matmul: MatmulKernel,
}

/// Which library computes the model's matrix products (see [`crate::kernels::matmul`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulKernel {
    #[default]
    Auto,
    Burn,
}

/// Which causal attention implementation the model uses (results agree to f32 rounding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKernel {
    #[default]
    Auto,
    Plain,
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_eps() -> f64 {
    1e-5
}

impl TransformerConfig {
    /// A model of these sizes with the handout's defaults: RoPE θ = 10000, RMSNorm ε = 1e-5,
    /// the flash kernel where available, f32.
    pub fn new(
        vocab_size: usize,
        context_length: usize,
        d_model: usize,
        num_layers: usize,
        num_heads: usize,
        d_ff: usize,
    ) -> Self {
        Self {
            vocab_size,
            context_length,
            d_model,
            num_layers,
            num_heads,
            d_ff,
            rope_theta: default_rope_theta(),
            eps: default_eps(),
            attention: AttentionKernel::Auto,
            precision: Precision::F32,
            matmul: MatmulKernel::Auto,
        }
    }

    /// The handout's "TinyStories" model: 17M non-embedding parameters.
    pub fn tiny_stories() -> Self {
        Self::new(10_000, 256, 512, 4, 16, 1344)
    }

    /// Per-head dimension `d_model / num_heads`.
    pub fn d_head(&self) -> usize {
        self.d_model / self.num_heads
    }

    /// Rejects configs the model cannot be built from, naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
            ("d_model", self.d_model),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("d_ff", self.d_ff),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(LmError::config(field, "must be at least 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.num_heads) {
            return Err(LmError::config(
                "d_model",
                format!(
                    "({}) must be divisible by num_heads ({})",
                    self.d_model, self.num_heads
                ),
            ));
        }
        if !self.d_head().is_multiple_of(2) {
            return Err(LmError::config(
                "num_heads",
                format!(
                    "gives an odd head dim d_model/num_heads = {}; RoPE rotates pairs and needs it even",
                    self.d_head()
                ),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(LmError::config("rope_theta", "must be a positive number"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(LmError::config("eps", "must be a positive number"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_heads_not_dividing_d_model() {
        let cfg = TransformerConfig {
            num_heads: 5,
            ..TransformerConfig::tiny_stories()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("`d_model`") && err.contains("num_heads"),
            "{err}"
        );
    }

    #[test]
    fn rejects_odd_head_dim() {
        let cfg = TransformerConfig {
            d_model: 48,
            num_heads: 16,
            ..TransformerConfig::tiny_stories()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("odd head dim"), "{err}");
    }

    #[test]
    fn rejects_unknown_keys() {
        let json = r#"{"vocab_size":10,"context_length":4,"d_model":8,"num_layers":1,
                       "num_heads":2,"d_ff":16,"dmodel":3}"#;
        let err = serde_json::from_str::<TransformerConfig>(json).unwrap_err();
        assert!(err.to_string().contains("dmodel"), "{err}");
    }

    #[test]
    fn accepts_course_default() {
        TransformerConfig::tiny_stories().validate().unwrap();
    }
}
