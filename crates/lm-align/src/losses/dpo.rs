//! The per-instance Direct Preference Optimization loss.

use burn::tensor::{Tensor, backend::Backend};
use lm_core::Result;

use super::check_shape;

/// `−log σ(z)` per instance, `z = β·((π_chosen − ref_chosen) − (π_rejected − ref_rejected))`,
/// from the four sequence log-probability sums (`[N]` each). Returns `[N]`.
pub fn dpo_loss<B: Backend>(
    policy_chosen_logps: Tensor<B, 1>,
    policy_rejected_logps: Tensor<B, 1>,
    ref_chosen_logps: Tensor<B, 1>,
    ref_rejected_logps: Tensor<B, 1>,
    beta: f64,
) -> Result<Tensor<B, 1>> {
    let n = policy_chosen_logps.dims();
    check_shape("policy_rejected_logps", &policy_rejected_logps.dims(), &n)?;
    check_shape("ref_chosen_logps", &ref_chosen_logps.dims(), &n)?;
    check_shape("ref_rejected_logps", &ref_rejected_logps.dims(), &n)?;
    let z = ((policy_chosen_logps - ref_chosen_logps)
        - (policy_rejected_logps - ref_rejected_logps))
        * beta;
    Ok(softplus_neg(z))
}

/// `softplus(−z) = log(1 + e^{−z})` without overflow: `log1p(e^{−z})` where `z ≥ 0` and
/// `−z + log1p(e^{z})` elsewhere. Each branch sees only the inputs of its own sign (the
/// others are zeroed), so no branch evaluates `e^{large}`, not even the unselected one
/// whose gradient would otherwise be `0 · ∞ = NaN`.
fn softplus_neg<B: Backend>(z: Tensor<B, 1>) -> Tensor<B, 1> {
    let nonneg = z.clone().greater_equal_elem(0.0);
    let z_pos = z.clone().mask_fill(nonneg.clone().bool_not(), 0.0);
    let z_neg = z.mask_fill(nonneg.clone(), 0.0);
    let pos_branch = z_pos.neg().exp().log1p();
    let neg_branch = z_neg.clone().exp().log1p() - z_neg;
    neg_branch.mask_where(nonneg, pos_branch)
}
