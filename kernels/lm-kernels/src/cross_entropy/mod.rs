//! Fused cross-entropy: per-row loss without materialising the softmax, and a one-pass
//! backward. On the GPU the tensor-op cross-entropy reads and writes the `[tokens, vocab]`
//! logits several times (max, subtract, exp, sum, gather, and as many again backward); here
//! the forward reads them once and the backward reads once and writes the gradient once.

pub mod backend;
pub mod kernels;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorPrimitive};

pub use backend::CrossEntropyBackend;

use crate::dispatch::same_type;

/// Per-row `logsumexp(logits[r]) − logits[r, targets[r]]` for `[rows, vocab]` logits;
/// differentiable with respect to the logits on `Autodiff<_>` backends. Targets must be in
/// `0..vocab` (not checked on the device).
pub fn cross_entropy_rows<B: CrossEntropyBackend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let (loss, _stats) =
        B::cross_entropy_rows(logits.into_primitive().tensor(), targets.into_primitive());
    Tensor::from_primitive(TensorPrimitive::Float(loss))
}

type Runner<B> = fn(Tensor<B, 2>, Tensor<B, 1, Int>) -> Tensor<B, 1>;

fn run_as<B: Backend, K: CrossEntropyBackend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    same_type(cross_entropy_rows::<K>(
        same_type(logits),
        same_type(targets),
    ))
}

/// [`cross_entropy_rows`] when `B` is one of this build's kernel backends, else `None`.
///
/// On CUDA it passed the golden cross-entropy cases (errors ≤ 1.2e-6) and trained the
/// TinyStories model to the same loss as the tensor-op path (H100, 2026-12-05);
/// `LM_CUDA_FUSED_CE=0` switches it off there, for comparisons.
pub fn try_cross_entropy_rows<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Option<Tensor<B, 1>> {
    if crate::dispatch::is_cuda::<B>() && cuda_opted_out() {
        return None;
    }
    let run: Option<Runner<B>> = crate::for_kernel_backend!(B, |K| run_as::<B, K> as Runner<B>);
    run.map(|run| run(logits, targets))
}

fn cuda_opted_out() -> bool {
    static OUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OUT.get_or_init(|| std::env::var("LM_CUDA_FUSED_CE").is_ok_and(|v| v == "0"))
}
