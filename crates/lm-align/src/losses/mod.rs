//! The lab-5 loss and statistics functions (golden README §4 "Assignment 5").
//!
//! Everything is generic over `B: Backend` and differentiable under burn's autodiff; inputs
//! are checked and bad shapes come back as [`LmError`](lm_core::LmError) naming the tensor.

mod dpo;
mod logprobs;
mod masked;
mod policy;
mod sft;

pub use dpo::dpo_loss;
pub use logprobs::{compute_entropy, log_probs_from_logits};
pub use masked::{masked_mean, masked_normalize};
pub use policy::{
    ClipStats, GroupRewards, LossType, PolicyGradientInputs, PolicyGradientLoss, RewardStats,
    compute_group_normalized_rewards, compute_grpo_clip_loss, compute_naive_policy_gradient_loss,
    compute_policy_gradient_loss, grpo_microbatch_train_step,
};
pub use sft::sft_microbatch_train_step;

use lm_core::{LmError, Result};

/// `got` must equal `expected`, else a shape error naming `tensor`.
fn check_shape(tensor: &str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(LmError::shape(tensor, format!("{expected:?}"), got))
    }
}

/// What both microbatch train steps require: a response mask shaped like the log-probs and
/// at least one accumulation step.
fn check_microbatch(
    mask: &[usize],
    policy_log_probs: &[usize],
    gradient_accumulation_steps: usize,
) -> Result<()> {
    check_shape("response_mask", mask, policy_log_probs)?;
    if gradient_accumulation_steps == 0 {
        return Err(LmError::config(
            "gradient_accumulation_steps",
            "must be ≥ 1",
        ));
    }
    Ok(())
}
