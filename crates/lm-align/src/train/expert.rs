//! Expert iteration: sample several answers per question, keep the correct ones, SFT on
//! them, repeat.

use std::collections::HashSet;

use burn::tensor::backend::AutodiffBackend;
use lm_core::Result;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::grpo::Question;
use super::{
    EvalHook, MetricsLog, RewardFn, SftConfig, TokenPair, TrainablePolicy, eval_at,
    question_rollouts, rollout_params, train_sft,
};
use crate::policy::TextCodec;
use crate::rollout::RolloutOptions;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpertIterationConfig {
    pub n_ei_steps: usize,
    /// Questions sampled per step (the course's D_b: 512, 1024 or 2048).
    pub questions_per_step: usize,
    /// Rollouts per question (G).
    pub samples_per_question: usize,
    pub sampling_temperature: f32,
    pub sampling_max_tokens: usize,
    /// Strings that end a rollout (kept in its text).
    pub sampling_stop: Vec<String>,
    pub max_batch_rows: usize,
    /// Passes of SFT over each step's correct rollouts.
    pub sft_epochs: usize,
    pub eval_every: usize,
    pub seed: u64,
    /// SFT settings of each step (its `steps` is replaced by what `sft_epochs` needs).
    pub sft: SftConfig,
}

impl Default for ExpertIterationConfig {
    fn default() -> Self {
        Self {
            n_ei_steps: 5,
            questions_per_step: 512,
            samples_per_question: 4,
            sampling_temperature: 1.0,
            sampling_max_tokens: 1024,
            sampling_stop: vec!["</answer>".into()],
            max_batch_rows: 64,
            sft_epochs: 1,
            eval_every: 1,
            seed: 0,
            sft: SftConfig::default(),
        }
    }
}

/// What one expert-iteration step logs.
#[derive(Debug, Clone, Serialize)]
pub struct ExpertStep {
    pub ei_step: usize,
    pub rollouts: usize,
    /// Correct rollouts kept (duplicates of one question's answer dropped).
    pub kept: usize,
    /// Fraction of rollouts with reward 1 (the policy's sampling accuracy).
    pub rollout_accuracy: f64,
    pub sft_steps: usize,
    /// Mean response-token NLL of the step's last SFT update.
    pub sft_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
pub fn expert_iteration<B, P>(
    mut policy: P,
    codec: &dyn TextCodec,
    questions: &[Question],
    reward: &RewardFn<'_>,
    max_len: usize,
    config: &ExpertIterationConfig,
    log: &mut MetricsLog,
    sft_log: &mut MetricsLog,
    mut eval: Option<&mut EvalHook<'_, P::InnerModule>>,
) -> Result<(P, Vec<ExpertStep>)>
where
    B: AutodiffBackend,
    P: TrainablePolicy<B>,
{
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let params = rollout_params(
        config.sampling_temperature,
        config.sampling_max_tokens,
        &config.sampling_stop,
    );
    let mut records = Vec::with_capacity(config.n_ei_steps);
    for ei_step in 1..=config.n_ei_steps {
        let mut picked: Vec<usize> = (0..questions.len()).collect();
        picked.shuffle(&mut rng);
        picked.truncate(config.questions_per_step.min(questions.len()));
        let opts = RolloutOptions {
            max_batch_rows: config.max_batch_rows,
            max_len,
            seed: config.seed.wrapping_add(ei_step as u64),
        };
        let rollouts = question_rollouts(
            &policy,
            codec,
            questions,
            &picked,
            config.samples_per_question,
            &params,
            &opts,
        )?;
        let mut seen = HashSet::new();
        let mut correct = 0;
        let mut kept = Vec::new();
        for r in &rollouts {
            let truth = &questions[picked[r.prompt_index]].ground_truth;
            if reward(&r.text, truth).reward >= 1.0 {
                correct += 1;
                if !r.response_ids.is_empty()
                    && seen.insert((r.prompt_index, r.response_ids.clone()))
                {
                    kept.push(TokenPair {
                        prompt_ids: r.prompt_ids.clone(),
                        response_ids: r.response_ids.clone(),
                    });
                }
            }
        }
        let batch = config.sft.batch_size.max(1);
        let sft_steps = (kept.len() * config.sft_epochs).div_ceil(batch);
        let mut sft_loss = None;
        if sft_steps > 0 {
            let sft = SftConfig {
                steps: sft_steps,
                seed: config.sft.seed.wrapping_add(ei_step as u64),
                eval_every: 0,
                ..config.sft.clone()
            };
            let (updated, steps) = train_sft(policy, &kept, codec.pad_id(), &sft, sft_log, None)?;
            policy = updated;
            sft_loss = steps.last().map(|s| s.loss);
        }
        let eval_accuracy = eval_at(
            &mut eval,
            &policy,
            ei_step,
            config.eval_every,
            config.n_ei_steps,
        )?;
        let record = ExpertStep {
            ei_step,
            rollouts: rollouts.len(),
            kept: kept.len(),
            rollout_accuracy: correct as f64 / rollouts.len().max(1) as f64,
            sft_steps,
            sft_loss,
            eval_accuracy,
        };
        log.write(&record)?;
        records.push(record);
    }
    Ok((policy, records))
}
