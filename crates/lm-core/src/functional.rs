//! Stateless ops: activations, softmax, losses.

use burn::tensor::{Int, Tensor, activation::sigmoid, backend::Backend};

/// `x · sigmoid(x)`.
pub fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * sigmoid(x)
}

/// Numerically stable softmax along `dim` (the row max is subtracted first).
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let shifted = x.clone() - x.max_dim(dim).detach();
    let e = shifted.exp();
    e.clone() / e.sum_dim(dim)
}

/// `log(sum(exp(x)))` along `dim`, kept as a size-1 dim; stable for large magnitudes.
pub fn logsumexp<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// `log_softmax` along `dim`.
pub fn log_softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    x.clone() - logsumexp(x, dim)
}

/// Mean over all positions of `logsumexp(logits) − logits[target]`.
///
/// `logits [..., vocab]`, `targets [...]` (rank `DL − 1`). Returns a one-element tensor.
pub fn cross_entropy<B: Backend, const DL: usize, const DT: usize>(
    logits: Tensor<B, DL>,
    targets: Tensor<B, DT, Int>,
) -> Tensor<B, 1> {
    let l_dims = logits.dims();
    let t_dims = targets.dims();
    assert!(
        DT + 1 == DL && l_dims[..DT] == t_dims[..],
        "cross_entropy: targets {t_dims:?} must be logits {l_dims:?} without the vocab dim"
    );
    let vocab = l_dims[DL - 1];
    let rows: usize = t_dims.iter().product();
    let logits: Tensor<B, 2> = logits.reshape([rows, vocab]);
    let targets: Tensor<B, 1, Int> = targets.reshape([rows]);
    // The fused kernel where the backend has it: one pass over the logits each way.
    if let Some(per_row) = crate::kernels::cross_entropy_rows(logits.clone(), targets.clone()) {
        return per_row.mean();
    }
    let picked = logits.clone().gather(1, targets.unsqueeze_dim(1));
    (logsumexp(logits, 1) - picked).mean()
}
