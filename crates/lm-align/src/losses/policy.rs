//! Policy-gradient losses for GRPO: group-normalised advantages, the naive and clipped
//! per-token losses, the dispatch on the loss type and the microbatch step.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Bool, ElementConversion, Tensor, backend::Backend};
use lm_core::{LmError, Result};

use super::{check_microbatch, check_shape, masked_mean};

/// Summary of the raw rewards of a rollout batch (logged by the training loop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardStats {
    pub mean: f64,
    /// Unbiased standard deviation over the whole batch.
    pub std: f64,
    pub max: f64,
    pub min: f64,
}

/// What [`compute_group_normalized_rewards`] returns.
#[derive(Debug, Clone)]
pub struct GroupRewards<B: Backend> {
    /// `[N]`, one per rollout.
    pub advantages: Tensor<B, 1>,
    /// `[N]`, the input rewards unchanged.
    pub raw_rewards: Tensor<B, 1>,
    pub stats: RewardStats,
}

/// Advantages within groups of `group_size` consecutive rollouts (the samples of one prompt):
/// `r − mean(group)`, divided by `std(group) + advantage_eps` (unbiased std) when
/// `normalize_by_std`. A group of equal rewards gets advantages 0.
pub fn compute_group_normalized_rewards<B: Backend>(
    raw_rewards: Tensor<B, 1>,
    group_size: usize,
    advantage_eps: f64,
    normalize_by_std: bool,
) -> Result<GroupRewards<B>> {
    let [n] = raw_rewards.dims();
    if group_size == 0 || n % group_size != 0 {
        return Err(LmError::config(
            "group_size",
            format!("{group_size} must be ≥ 1 and divide the number of rewards {n}"),
        ));
    }
    if n == 0 {
        return Err(LmError::shape("raw_rewards", "at least one reward", &[n]));
    }
    let grouped: Tensor<B, 2> = raw_rewards.clone().reshape([n / group_size, group_size]);
    let centred = grouped.clone() - grouped.clone().mean_dim(1);
    let advantages = if normalize_by_std {
        centred / (grouped.var(1).sqrt() + advantage_eps)
    } else {
        centred
    };
    let scalar = |t: Tensor<B, 1>| -> f64 { t.into_scalar().elem() };
    let stats = RewardStats {
        mean: scalar(raw_rewards.clone().mean()),
        std: scalar(raw_rewards.clone().var(0).sqrt()),
        max: scalar(raw_rewards.clone().max()),
        min: scalar(raw_rewards.clone().min()),
    };
    Ok(GroupRewards {
        advantages: advantages.reshape([n]),
        raw_rewards,
        stats,
    })
}

/// `[B, 1]` per-sequence values that broadcast over the `[B, S]` tokens of `policy_log_probs`.
fn check_per_sequence<B: Backend>(
    name: &str,
    t: &Tensor<B, 2>,
    policy_log_probs: &Tensor<B, 2>,
) -> Result<()> {
    check_shape(name, &t.dims(), &[policy_log_probs.dims()[0], 1])
}

/// `−A · log π` per token: REINFORCE with rewards or advantages `[B, 1]` broadcast over the
/// `[B, S]` log-probabilities.
pub fn compute_naive_policy_gradient_loss<B: Backend>(
    raw_rewards_or_advantages: Tensor<B, 2>,
    policy_log_probs: Tensor<B, 2>,
) -> Result<Tensor<B, 2>> {
    check_per_sequence(
        "raw_rewards_or_advantages",
        &raw_rewards_or_advantages,
        &policy_log_probs,
    )?;
    Ok(-(raw_rewards_or_advantages * policy_log_probs))
}

/// Which tokens the clipped objective clipped.
#[derive(Debug, Clone)]
pub struct ClipStats<B: Backend> {
    /// `[B, S]`: true where `clip(ratio)·A < ratio·A` (strictly), i.e. the clipped term won.
    pub clipped: Tensor<B, 2, Bool>,
    /// One element: the fraction of clipped tokens over all `B·S`.
    pub clip_fraction: Tensor<B, 1>,
}

/// The GRPO-Clip (PPO-style) per-token loss:
/// `−min(ratio·A, clip(ratio, 1 − cliprange, 1 + cliprange)·A)`,
/// `ratio = exp(policy_log_probs − old_log_probs)`. `advantages [B, 1]`, log-probs `[B, S]`.
pub fn compute_grpo_clip_loss<B: Backend>(
    advantages: Tensor<B, 2>,
    policy_log_probs: Tensor<B, 2>,
    old_log_probs: Tensor<B, 2>,
    cliprange: f64,
) -> Result<(Tensor<B, 2>, ClipStats<B>)> {
    check_per_sequence("advantages", &advantages, &policy_log_probs)?;
    check_shape(
        "old_log_probs",
        &old_log_probs.dims(),
        &policy_log_probs.dims(),
    )?;
    if cliprange.is_nan() || cliprange < 0.0 {
        return Err(LmError::config(
            "cliprange",
            format!("{cliprange} must be ≥ 0"),
        ));
    }
    let ratio = (policy_log_probs - old_log_probs).exp();
    let unclipped = ratio.clone() * advantages.clone();
    let clipped_term = ratio.clamp(1.0 - cliprange, 1.0 + cliprange) * advantages;
    let clipped = clipped_term.clone().lower(unclipped.clone());
    // min(a, b) written as a select: where the clipped term wins the ratio lies outside the
    // clip range, so its gradient is 0, as torch's; elsewhere the gradient is ratio·A's.
    let loss = -unclipped.mask_where(clipped.clone(), clipped_term);
    let clip_fraction = clipped.clone().float().mean();
    Ok((
        loss,
        ClipStats {
            clipped,
            clip_fraction,
        },
    ))
}

/// The per-token policy-gradient losses the course compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossType {
    /// REINFORCE on the raw rewards.
    NoBaseline,
    /// REINFORCE on the group-normalised advantages.
    ReinforceWithBaseline,
    /// The clipped importance-weighted objective.
    GrpoClip,
}

impl LossType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoBaseline => "no_baseline",
            Self::ReinforceWithBaseline => "reinforce_with_baseline",
            Self::GrpoClip => "grpo_clip",
        }
    }
}

impl fmt::Display for LossType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LossType {
    type Err = LmError;

    fn from_str(s: &str) -> Result<Self> {
        [
            Self::NoBaseline,
            Self::ReinforceWithBaseline,
            Self::GrpoClip,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| {
            LmError::config(
                "loss_type",
                format!("`{s}` is not one of no_baseline, reinforce_with_baseline, grpo_clip"),
            )
        })
    }
}

/// The optional inputs of [`compute_policy_gradient_loss`]; each loss type needs its own.
#[derive(Debug, Clone)]
pub struct PolicyGradientInputs<B: Backend> {
    /// `[B, 1]`, for `no_baseline`.
    pub raw_rewards: Option<Tensor<B, 2>>,
    /// `[B, 1]`, for `reinforce_with_baseline` and `grpo_clip`.
    pub advantages: Option<Tensor<B, 2>>,
    /// `[B, S]`, for `grpo_clip`.
    pub old_log_probs: Option<Tensor<B, 2>>,
    /// For `grpo_clip`.
    pub cliprange: Option<f64>,
}

impl<B: Backend> Default for PolicyGradientInputs<B> {
    fn default() -> Self {
        Self {
            raw_rewards: None,
            advantages: None,
            old_log_probs: None,
            cliprange: None,
        }
    }
}

/// A per-token loss `[B, S]` and, for `grpo_clip`, its clipping statistics.
#[derive(Debug, Clone)]
pub struct PolicyGradientLoss<B: Backend> {
    pub loss: Tensor<B, 2>,
    pub clip: Option<ClipStats<B>>,
}

fn required<T>(value: Option<T>, field: &str, loss_type: LossType) -> Result<T> {
    value.ok_or_else(|| LmError::config(field, format!("is required by loss_type {loss_type}")))
}

/// The per-token loss of `loss_type` (see [`LossType`]); an input the type needs but that is
/// `None` is an error naming it.
pub fn compute_policy_gradient_loss<B: Backend>(
    policy_log_probs: Tensor<B, 2>,
    loss_type: LossType,
    inputs: PolicyGradientInputs<B>,
) -> Result<PolicyGradientLoss<B>> {
    let naive = |weights| -> Result<PolicyGradientLoss<B>> {
        Ok(PolicyGradientLoss {
            loss: compute_naive_policy_gradient_loss(weights, policy_log_probs.clone())?,
            clip: None,
        })
    };
    match loss_type {
        LossType::NoBaseline => naive(required(inputs.raw_rewards, "raw_rewards", loss_type)?),
        LossType::ReinforceWithBaseline => {
            naive(required(inputs.advantages, "advantages", loss_type)?)
        }
        LossType::GrpoClip => {
            let (loss, stats) = compute_grpo_clip_loss(
                required(inputs.advantages, "advantages", loss_type)?,
                policy_log_probs.clone(),
                required(inputs.old_log_probs, "old_log_probs", loss_type)?,
                required(inputs.cliprange, "cliprange", loss_type)?,
            )?;
            Ok(PolicyGradientLoss {
                loss,
                clip: Some(stats),
            })
        }
    }
}

/// The scaled GRPO loss of one microbatch, ready to back-propagate: the per-token loss
/// averaged over each sequence's response tokens (`response_mask [B, S]`), then over the
/// batch, divided by `gradient_accumulation_steps`. Returns the one-element loss and the
/// per-token loss details (clip statistics for `grpo_clip`).
pub fn grpo_microbatch_train_step<B: Backend>(
    policy_log_probs: Tensor<B, 2>,
    response_mask: Tensor<B, 2, Bool>,
    gradient_accumulation_steps: usize,
    loss_type: LossType,
    inputs: PolicyGradientInputs<B>,
) -> Result<(Tensor<B, 1>, PolicyGradientLoss<B>)> {
    check_microbatch(
        &response_mask.dims(),
        &policy_log_probs.dims(),
        gradient_accumulation_steps,
    )?;
    let per_token = compute_policy_gradient_loss(policy_log_probs, loss_type, inputs)?;
    let per_sequence = masked_mean(per_token.loss.clone(), response_mask, Some(1))?;
    let loss = per_sequence.mean() / gradient_accumulation_steps as f64;
    Ok((loss, per_token))
}
