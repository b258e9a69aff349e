//! GRPO's settings: the course's hyper-parameters and defaults, checked before a run.

use std::fmt;
use std::str::FromStr;

use lm_core::{LmError, Result};
use serde::{Deserialize, Serialize};

use super::OptimConfig;
use super::sft::accumulation_steps;
use crate::losses::LossType;

/// How a sequence's per-token losses become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthNorm {
    /// Mean over the sequence's response tokens (long answers weigh no more than short).
    MaskedMean,
    /// Sum over response tokens divided by `sampling_max_tokens` (Dr. GRPO).
    MaskedNormalize,
}

impl fmt::Display for LengthNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaskedMean => "masked_mean",
            Self::MaskedNormalize => "masked_normalize",
        })
    }
}

impl FromStr for LengthNorm {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "masked_mean" => Ok(Self::MaskedMean),
            "masked_normalize" => Ok(Self::MaskedNormalize),
            _ => Err(LmError::config(
                "length_normalization",
                format!("`{s}` is not masked_mean or masked_normalize"),
            )),
        }
    }
}

/// The course's GRPO hyper-parameters, with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    pub n_grpo_steps: usize,
    pub advantage_eps: f64,
    pub rollout_batch_size: usize,
    pub group_size: usize,
    pub sampling_temperature: f32,
    pub sampling_max_tokens: usize,
    /// Strings that end a rollout (kept in its text, as the course's vLLM settings do).
    pub sampling_stop: Vec<String>,
    /// Passes over each rollout batch; more than one is off-policy.
    pub epochs_per_rollout_batch: usize,
    pub train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub loss_type: String,
    pub use_std_normalization: bool,
    pub length_normalization: LengthNorm,
    pub cliprange: f64,
    /// Rows of the engine's KV cache while sampling rollouts.
    pub max_batch_rows: usize,
    pub eval_every: usize,
    pub seed: u64,
    pub optim: OptimConfig,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            n_grpo_steps: 200,
            advantage_eps: 1e-6,
            rollout_batch_size: 256,
            group_size: 8,
            sampling_temperature: 1.0,
            sampling_max_tokens: 1024,
            sampling_stop: vec!["</answer>".into()],
            epochs_per_rollout_batch: 1,
            train_batch_size: 256,
            gradient_accumulation_steps: 128,
            loss_type: "reinforce_with_baseline".into(),
            use_std_normalization: true,
            length_normalization: LengthNorm::MaskedMean,
            cliprange: 0.2,
            max_batch_rows: 64,
            eval_every: 10,
            seed: 0,
            optim: OptimConfig::default(),
        }
    }
}

impl GrpoConfig {
    /// Checks the batch arithmetic; returns (loss type, questions per step, microbatch size).
    pub fn validate(&self) -> Result<(LossType, usize, usize)> {
        let loss_type: LossType = self.loss_type.parse()?;
        let prompts = accumulation_steps(
            self.rollout_batch_size,
            self.group_size,
            "rollout_batch_size",
        )?;
        accumulation_steps(
            self.rollout_batch_size,
            self.train_batch_size,
            "rollout_batch_size",
        )?;
        let micro = self.train_batch_size / self.gradient_accumulation_steps.max(1);
        accumulation_steps(self.train_batch_size, micro.max(1), "train_batch_size")?;
        if self.gradient_accumulation_steps == 0 || micro == 0 {
            return Err(LmError::config(
                "gradient_accumulation_steps",
                format!(
                    "{} must be in 1..={}",
                    self.gradient_accumulation_steps, self.train_batch_size
                ),
            ));
        }
        if self.epochs_per_rollout_batch == 0 {
            return Err(LmError::config("epochs_per_rollout_batch", "must be ≥ 1"));
        }
        Ok((loss_type, prompts, micro))
    }
}
