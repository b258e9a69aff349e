//! The alignment loops: SFT, expert iteration, GRPO and DPO over any [`Policy`](crate::policy::Policy).
//!
//! Each loop takes the policy on an autodiff backend, samples with its inner-backend copy
//! (`policy.valid()`) through the generation engine, accumulates microbatch gradients and
//! takes clipped AdamW steps; per-step figures go to a [`MetricsLog`] and an optional
//! evaluation callback runs every `eval_every` steps.

mod dpo;
mod expert;
mod grpo;
mod log;
mod optimizer;
mod sft;

pub use dpo::{DpoConfig, DpoStep, PreferencePair, train_dpo};
pub use expert::{ExpertIterationConfig, ExpertStep, expert_iteration};
pub use grpo::{GrpoConfig, GrpoStep, LengthNorm, Question, train_grpo};
pub use log::MetricsLog;
pub use optimizer::{OptimConfig, PolicyOptimizer};
pub use sft::{SftConfig, SftStep, TokenPair, train_sft};

use burn::tensor::backend::Backend;
use lm_core::Result;

/// `reward(response, ground_truth)`: the course's `reward_fn` (normally
/// [`r1_zero_reward`](crate::grader::r1_zero_reward)).
pub type RewardFn<'a> = dyn Fn(&str, &str) -> crate::grader::Reward + Sync + 'a;

/// Runs every `every` steps (and after the last) on the inner-backend policy; returns the
/// accuracy to log. `every = 0` never runs.
pub type EvalHook<'a, M> = dyn FnMut(&M, usize) -> Result<f64> + 'a;

/// Whether step `step` (1-based) of `total` evaluates.
fn is_eval_step(step: usize, every: usize, total: usize) -> bool {
    every > 0 && (step.is_multiple_of(every) || step == total)
}

/// The mean of a `[1]` or scalar-like tensor, read back.
fn read_scalar<B: Backend>(t: burn::tensor::Tensor<B, 1>) -> f64 {
    use burn::tensor::ElementConversion;
    t.mean().into_scalar().elem()
}
