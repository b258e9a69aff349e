//! The supervised fine-tuning loss of one microbatch.

use burn::tensor::{Bool, Tensor, backend::Backend};
use lm_core::Result;

use super::{check_microbatch, masked_normalize};

/// The scaled SFT loss of one microbatch, ready to back-propagate:
/// `−Σ(policy_log_probs · response_mask) / (normalize_constant · B · gradient_accumulation_steps)`,
/// i.e. the batch mean of each sequence's normalised response log-likelihood, negated and
/// divided by the accumulation steps. `policy_log_probs`, `response_mask`: `[B, S]`.
/// Returns a one-element tensor; the caller runs `backward`.
pub fn sft_microbatch_train_step<B: Backend>(
    policy_log_probs: Tensor<B, 2>,
    response_mask: Tensor<B, 2, Bool>,
    gradient_accumulation_steps: usize,
    normalize_constant: f64,
) -> Result<Tensor<B, 1>> {
    check_microbatch(
        &response_mask.dims(),
        &policy_log_probs.dims(),
        gradient_accumulation_steps,
    )?;
    let per_sequence =
        masked_normalize(policy_log_probs, response_mask, Some(1), normalize_constant)?;
    let loss = -per_sequence.mean() / gradient_accumulation_steps as f64;
    Ok(loss)
}
