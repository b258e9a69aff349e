//! The inputs of the decode step's q/k/v kernel (`decode`), in every build: lm-core's CPU
//! path takes the same struct.

use burn::tensor::{Int, Tensor, backend::Backend};

/// What the decode step's q/k/v kernel reads besides the caches.
pub struct QkvInputs<B: Backend> {
    /// The stacked q/k/v projection `[rows, (heads + 2·kv_heads) · head_dim]`, before its bias.
    pub qkv: Tensor<B, 2>,
    /// `[(heads + 2·kv_heads) · head_dim]`, in qkv's dtype.
    pub bias: Option<Tensor<B, 1>>,
    /// RoPE's `cos` and `sin_signed` rows at each row's position, `[rows, head_dim]`.
    pub cos: Tensor<B, 2>,
    pub sin_signed: Tensor<B, 2>,
    /// `[head_dim]`: the feature each one is rotated with.
    pub partner: Tensor<B, 1, Int>,
    /// `[rows]`: the cache slot of each row's token (outside `0..max_len`: not written).
    pub slots: Tensor<B, 1, Int>,
    pub heads: usize,
}
