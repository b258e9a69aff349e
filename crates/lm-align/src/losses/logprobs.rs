//! Per-token statistics of a language model's output distribution.

use burn::tensor::{ElementConversion, Int, Tensor, backend::Backend};
use lm_core::{LmError, Result};

use super::check_shape;

/// `log_softmax` along `dim`, shifting by the max before anything else: `(x − m) − log Σ e^(x − m)`.
/// Near the peak `x − m` is exact, so `log p ≈ 0` keeps its small value instead of being the
/// rounding residue of `x − (m + log Σ)` at the scale of `x` (lm-core's `log_softmax`), which
/// would dominate the entropy gradient of peaked rows.
fn log_softmax_shifted<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let shifted = x.clone() - x.max_dim(dim).detach();
    shifted.clone() - shifted.exp().sum_dim(dim).log()
}

/// Entropy of `softmax(logits)` over the last dim, `logsumexp(l) − Σ softmax(l)·l`, evaluated
/// as `−Σ p·log p` with `log p = log_softmax(l)`.
///
/// `logits [..., V]` → `[...]` (`DO = D − 1`). `log p` comes from the max-shifted logits, so it
/// never takes the log of an underflowed probability; and the gradient works on `log p`
/// (small near a peak) rather than on the raw logits, whose size would cancel catastrophically
/// in `∂H/∂l = −p·(l − Σ p·l)` for peaked distributions.
pub fn compute_entropy<B: Backend, const D: usize, const DO: usize>(
    logits: Tensor<B, D>,
) -> Result<Tensor<B, DO>> {
    if D < 2 || DO + 1 != D {
        return Err(LmError::config(
            "compute_entropy",
            format!("output rank {DO} must be logits rank {D} minus one (rank ≥ 2)"),
        ));
    }
    let last = D - 1;
    let log_p = log_softmax_shifted(logits, last);
    let entropy = -(log_p.clone().exp() * log_p).sum_dim(last);
    Ok(entropy.squeeze_dim(last))
}

/// `log_softmax(logits)[b, s, labels[b, s]]`: the log-probability of each label token, what
/// `get_response_log_probs` computes after the model forward. `logits [B, S, V]`,
/// `labels [B, S]` → `[B, S]`.
///
/// Labels are checked against the vocabulary (one device read), since an out-of-range gather
/// would panic inside the backend.
pub fn log_probs_from_logits<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
) -> Result<Tensor<B, 2>> {
    let [b, s, v] = logits.dims();
    check_shape("labels", &labels.dims(), &[b, s])?;
    if b * s > 0 {
        let lo: i64 = labels.clone().min().into_scalar().elem();
        let hi: i64 = labels.clone().max().into_scalar().elem();
        if lo < 0 || hi >= v as i64 {
            return Err(LmError::config(
                "labels",
                format!("ids must lie in [0, {v}) (the vocabulary), found {lo}..={hi}"),
            ));
        }
    }
    let picked = log_softmax_shifted(logits, 2).gather(2, labels.unsqueeze_dim(2));
    Ok(picked.squeeze_dim(2))
}
