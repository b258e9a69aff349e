//! What the decode step's paths share in every build (lm-core's CPU path as well as the
//! `decode` kernels): the q/k/v inputs and the `LM_DECODE_KERNELS` switch.

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

/// Whether `LM_DECODE_KERNELS=0` keeps the decode step (and SwiGLU's gate) in tensor ops.
pub fn decode_kernels_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("LM_DECODE_KERNELS").is_ok_and(|v| v == "0"))
}
