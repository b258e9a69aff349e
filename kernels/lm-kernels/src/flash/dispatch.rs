//! FlashAttention for code generic over any burn backend (see [`crate::dispatch`]).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{FlashAttentionBackend, FlashAttentionError, flash_attention};
use crate::dispatch::same_type;

type Output<B> = Result<(Tensor<B, 4>, Tensor<B, 3>), FlashAttentionError>;
type Runner<B> = fn(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>, bool, Option<f32>) -> Output<B>;

fn run_as<B: Backend, K: FlashAttentionBackend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Output<B> {
    let out = flash_attention::<K>(same_type(q), same_type(k), same_type(v), causal, scale);
    out.map(|(o, lse)| (same_type(o), same_type(lse)))
}

fn kernel_for<B: Backend>() -> Option<Runner<B>> {
    crate::for_kernel_backend!(B, |K| run_as::<B, K> as Runner<B>)
}

/// Whether [`try_flash_attention`] has a kernel for backend `B`.
pub fn supports<B: Backend>() -> bool {
    kernel_for::<B>().is_some()
}

/// [`flash_attention`] when `B` is one of this build's kernel backends, else `None`.
pub fn try_flash_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Option<Output<B>> {
    kernel_for::<B>().map(|run| run(q, k, v, causal, scale))
}
