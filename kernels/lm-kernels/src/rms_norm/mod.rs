//! Fused RMSNorm: one kernel forward (a row's sum of squares, then the scaled row) and two
//! backward (the input gradient per row; the gain gradient as per-chunk column sums, added
//! up by one reduction). The tensor-op version is ~6 kernels forward and ~12 backward.

pub mod backend;
pub mod kernels;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

pub use backend::RmsNormBackend;

use crate::dispatch::same_type;

/// `x / √(mean(x²) + eps) · weight` over the last dim of `x [rows, dim]`, computed in f32
/// and returned in x's dtype; differentiable in `x` and `weight` on `Autodiff<_>` backends.
pub fn rms_norm<B: RmsNormBackend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 2> {
    let (y, _inv_rms) = B::rms_norm(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        eps as f32,
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

type Runner<B> = fn(Tensor<B, 2>, Tensor<B, 1>, f64) -> Tensor<B, 2>;

fn run_as<B: Backend, K: RmsNormBackend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 2> {
    same_type(rms_norm::<K>(same_type(x), same_type(weight), eps))
}

/// [`rms_norm`] when `B` is one of this build's kernel backends (and `LM_FUSED_RMSNORM` is
/// not `0`), else `None`.
pub fn try_rms_norm<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, 2>> {
    if opted_out() {
        return None;
    }
    let run: Option<Runner<B>> = crate::for_kernel_backend!(B, |K| run_as::<B, K> as Runner<B>);
    run.map(|run| run(x, weight, eps))
}

fn opted_out() -> bool {
    static OUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OUT.get_or_init(|| std::env::var("LM_FUSED_RMSNORM").is_ok_and(|v| v == "0"))
}
