//! The alignment loops: SFT, expert iteration, GRPO and DPO over any [`Policy`](crate::policy::Policy).
//!
//! Each loop takes the policy on an autodiff backend, samples with its inner-backend copy
//! (`policy.valid()`) through the generation engine, accumulates microbatch gradients and
//! takes clipped AdamW steps; per-step figures go to a [`MetricsLog`] and an optional
//! evaluation callback runs every `eval_every` steps.

mod dpo;
mod expert;
mod grpo;
mod grpo_config;
mod log;
mod optimizer;
mod sft;

pub use dpo::{DpoConfig, DpoStep, PreferencePair, train_dpo};
pub use expert::{ExpertIterationConfig, ExpertStep, expert_iteration};
pub use grpo::{GrpoStep, Question, train_grpo};
pub use grpo_config::{GrpoConfig, LengthNorm};
pub use log::MetricsLog;
pub use optimizer::{OptimConfig, PolicyOptimizer};
pub use sft::{SftConfig, SftStep, TokenPair, train_sft};

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use lm_core::Result;
use lm_core::generate::SamplingParams;

use crate::policy::{Policy, TextCodec};
use crate::rollout::{Rollout, RolloutOptions, sample_rollouts};

/// `reward(response, ground_truth)`: the course's `reward_fn` (normally
/// [`r1_zero_reward`](crate::grader::r1_zero_reward)).
pub type RewardFn<'a> = dyn Fn(&str, &str) -> crate::grader::Reward + Sync + 'a;

/// Runs every `every` steps (and after the last) on the inner-backend policy; returns the
/// accuracy to log. `every = 0` never runs.
pub type EvalHook<'a, M> = dyn FnMut(&M, usize) -> Result<f64> + 'a;

/// A policy the loops can train: a [`Policy`] on an autodiff backend whose inner-backend
/// copy (`valid()`) is a [`Policy`] too (it samples the rollouts).
pub trait TrainablePolicy<B: AutodiffBackend>:
    Policy<B> + AutodiffModule<B, InnerModule: Policy<B::InnerBackend>>
{
}

impl<B, P> TrainablePolicy<B> for P
where
    B: AutodiffBackend,
    P: Policy<B> + AutodiffModule<B>,
    P::InnerModule: Policy<B::InnerBackend>,
{
}

/// Runs `eval` on the inner-backend policy at 1-based `step` when it is a multiple of
/// `every` or the last of `total` (`every = 0`: never).
fn eval_at<B: AutodiffBackend, P: TrainablePolicy<B>>(
    eval: &mut Option<&mut EvalHook<'_, P::InnerModule>>,
    policy: &P,
    step: usize,
    every: usize,
    total: usize,
) -> Result<Option<f64>> {
    match eval {
        Some(f) if every > 0 && (step.is_multiple_of(every) || step == total) => {
            Ok(Some(f(&policy.valid(), step)?))
        }
        _ => Ok(None),
    }
}

/// Rollout sampling as the course's vLLM settings: temperature, max tokens, stop strings
/// (kept in the text), top-p 1.
fn rollout_params(temperature: f32, max_tokens: usize, stop: &[String]) -> SamplingParams {
    SamplingParams {
        temperature,
        max_tokens,
        stop: stop.to_vec(),
        ..SamplingParams::default()
    }
}

/// The mean of a `[1]` or scalar-like tensor, read back.
fn read_scalar<B: Backend>(t: burn::tensor::Tensor<B, 1>) -> f64 {
    use burn::tensor::ElementConversion;
    t.mean().into_scalar().elem()
}

/// `group` rollouts of each picked question from the policy as it is now (sampled on its
/// inner backend), groups consecutive.
fn question_rollouts<B: AutodiffBackend, P: TrainablePolicy<B>>(
    policy: &P,
    codec: &dyn TextCodec,
    questions: &[Question],
    picked: &[usize],
    group: usize,
    params: &SamplingParams,
    opts: &RolloutOptions,
) -> Result<Vec<Rollout>> {
    let prompts: Vec<Vec<u32>> = picked
        .iter()
        .map(|&i| questions[i].prompt_ids.clone())
        .collect();
    sample_rollouts(&policy.valid(), codec, &prompts, group, params, opts)
}
