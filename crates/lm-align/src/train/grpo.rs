//! GRPO (the course's variants): group rollouts from the engine, r1_zero rewards,
//! group-normalised advantages, then on- or off-policy epochs of policy-gradient steps.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use lm_core::{LmError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{
    EvalHook, GrpoConfig, LengthNorm, MetricsLog, PolicyOptimizer, RewardFn, TrainablePolicy,
    eval_at, question_rollouts, read_scalar, rollout_params,
};
use crate::eval::PromptTemplate;
use crate::losses::{
    LossType, PolicyGradientInputs, compute_group_normalized_rewards, compute_policy_gradient_loss,
    grpo_microbatch_train_step, masked_mean, masked_normalize,
};
use crate::policy::TextCodec;
use crate::rollout::{Rollout, RolloutOptions};
use crate::scoring::{TokenBatch, score_responses};

/// A training question: its prompt ids and the answer the reward compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub prompt_ids: Vec<u32>,
    pub ground_truth: String,
}

impl Question {
    /// `question` rendered into `template` and tokenized, with its reference answer.
    pub fn new(
        template: &PromptTemplate,
        question: &str,
        ground_truth: &str,
        codec: &dyn TextCodec,
    ) -> Result<Self> {
        Ok(Self {
            prompt_ids: codec.encode(&template.render(question))?,
            ground_truth: ground_truth.to_string(),
        })
    }
}

/// What one GRPO step logs (means over the rollout batch unless said).
#[derive(Debug, Clone, Serialize)]
pub struct GrpoStep {
    pub step: usize,
    pub reward: f64,
    pub format_reward: f64,
    pub answer_reward: f64,
    /// Mean next-token entropy over response tokens.
    pub entropy: f64,
    /// Fraction of response tokens whose clipped term won (grpo_clip; 0 otherwise).
    pub clip_fraction: f64,
    pub response_length: f64,
    /// Mean over this step's optimizer updates.
    pub grad_norm: f64,
    pub loss: f64,
    pub rollout_seconds: f64,
    pub train_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// Runs `config.n_grpo_steps` GRPO steps on `questions` (each step samples
/// `rollout_batch_size / group_size` of them without replacement within a pass).
#[allow(clippy::too_many_arguments)]
pub fn train_grpo<B, P>(
    mut policy: P,
    codec: &dyn TextCodec,
    questions: &[Question],
    reward: &RewardFn<'_>,
    max_len: usize,
    config: &GrpoConfig,
    log: &mut MetricsLog,
    mut eval: Option<&mut EvalHook<'_, P::InnerModule>>,
) -> Result<(P, Vec<GrpoStep>)>
where
    B: AutodiffBackend,
    P: TrainablePolicy<B>,
{
    let (loss_type, prompts_per_step, micro) = config.validate()?;
    if questions.len() < prompts_per_step {
        return Err(LmError::config(
            "questions",
            format!(
                "{} questions, fewer than the {prompts_per_step} one step samples",
                questions.len()
            ),
        ));
    }
    let device = policy.devices().into_iter().next().unwrap_or_default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut optimizer = PolicyOptimizer::<B>::new(config.optim.clone());
    let params = rollout_params(
        config.sampling_temperature,
        config.sampling_max_tokens,
        &config.sampling_stop,
    );
    let mut pool: Vec<usize> = Vec::new();
    let mut records = Vec::with_capacity(config.n_grpo_steps);
    for step in 1..=config.n_grpo_steps {
        let start = Instant::now();
        let picked = draw_questions(&mut pool, questions.len(), prompts_per_step, &mut rng);
        let opts = RolloutOptions {
            max_batch_rows: config.max_batch_rows,
            max_len,
            seed: config.seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        let rollouts = question_rollouts(
            &policy,
            codec,
            questions,
            &picked,
            config.group_size,
            &params,
            &opts,
        )?;
        let rewards: Vec<_> = rollouts
            .iter()
            .map(|r| reward(&r.text, &questions[picked[r.prompt_index]].ground_truth))
            .collect();
        let raw: Vec<f32> = rewards.iter().map(|r| r.reward as f32).collect();
        let n = raw.len();
        let groups = compute_group_normalized_rewards::<B::InnerBackend>(
            Tensor::from_data(TensorData::new(raw.clone(), [n]), &device),
            config.group_size,
            config.advantage_eps,
            config.use_std_normalization,
        )?;
        let advantages = groups
            .advantages
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| LmError::config("advantages", format!("{e:?}")))?;
        let rollout_seconds = start.elapsed().as_secs_f64();

        let train_start = Instant::now();
        let responses: Vec<Vec<u32>> = rollouts.iter().map(|r| scored_response(r, codec)).collect();
        let rollout_prompts: Vec<Vec<u32>> =
            rollouts.iter().map(|r| r.prompt_ids.clone()).collect();
        let old_log_probs = if loss_type == LossType::GrpoClip {
            Some(old_log_probs::<B, P>(
                &policy,
                &rollout_prompts,
                &responses,
                codec.pad_id(),
                micro,
                &device,
            )?)
        } else {
            None
        };
        let mut totals = Totals::default();
        let accumulation = config.train_batch_size / micro;
        for _epoch in 0..config.epochs_per_rollout_batch {
            for batch_start in (0..n).step_by(config.train_batch_size) {
                for m in 0..accumulation {
                    let range = batch_start + m * micro..batch_start + (m + 1) * micro;
                    let batch = TokenBatch::<B>::new(
                        &rollout_prompts[range.clone()],
                        &responses[range.clone()],
                        codec.pad_id(),
                        &device,
                    );
                    let scores = score_responses(&policy, &batch, true)?;
                    let column = |values: &[f32]| -> Tensor<B, 2> {
                        Tensor::from_data(
                            TensorData::new(values[range.clone()].to_vec(), [micro, 1]),
                            &device,
                        )
                    };
                    let inputs = PolicyGradientInputs {
                        raw_rewards: Some(column(&raw)),
                        advantages: Some(column(&advantages)),
                        old_log_probs: old_log_probs
                            .as_ref()
                            .map(|o| Tensor::from_inner(o[batch_start / micro + m].clone())),
                        cliprange: Some(config.cliprange),
                    };
                    let mask = batch.response_mask.clone();
                    let (loss, details) = policy_loss(
                        scores.log_probs,
                        mask.clone(),
                        accumulation,
                        loss_type,
                        inputs,
                        config,
                    )?;
                    totals.loss += read_scalar(loss.clone().detach());
                    if let Some(e) = scores.entropy {
                        totals.entropy +=
                            read_scalar(masked_mean(e, mask.clone(), None)?.reshape([1]));
                        totals.entropy_batches += 1;
                    }
                    if let Some(clip) = details.clip {
                        let clipped = clip.clipped.bool_and(mask).int().sum();
                        totals.clipped += read_scalar(clipped.float().reshape([1]));
                    }
                    totals.tokens += batch.response_tokens;
                    optimizer.accumulate(&policy, loss);
                }
                let (updated, norm) = optimizer.step(policy, config.optim.lr);
                policy = updated;
                totals.grad_norm += norm;
                totals.updates += 1;
            }
        }
        let eval_accuracy = eval_at(
            &mut eval,
            &policy,
            step,
            config.eval_every,
            config.n_grpo_steps,
        )?;
        let mean = |f: &dyn Fn(&crate::grader::Reward) -> f64| {
            rewards.iter().map(f).sum::<f64>() / n as f64
        };
        let record = GrpoStep {
            step,
            reward: mean(&|r| r.reward),
            format_reward: mean(&|r| r.format_reward),
            answer_reward: mean(&|r| r.answer_reward),
            entropy: totals.entropy / totals.entropy_batches.max(1) as f64,
            clip_fraction: totals.clipped / totals.tokens.max(1) as f64,
            response_length: responses.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
            grad_norm: totals.grad_norm / totals.updates.max(1) as f64,
            loss: totals.loss / totals.updates.max(1) as f64,
            rollout_seconds,
            train_seconds: train_start.elapsed().as_secs_f64(),
            eval_accuracy,
        };
        log.write(&record)?;
        records.push(record);
    }
    Ok((policy, records))
}

#[derive(Default)]
struct Totals {
    loss: f64,
    entropy: f64,
    entropy_batches: usize,
    clipped: f64,
    tokens: usize,
    grad_norm: f64,
    updates: usize,
}

/// The ids a rollout is trained on: never empty (an immediate stop is scored as the stop
/// token, so the masked mean has at least one token).
fn scored_response(r: &Rollout, codec: &dyn TextCodec) -> Vec<u32> {
    if r.response_ids.is_empty() {
        vec![
            codec
                .stop_token_ids()
                .first()
                .copied()
                .unwrap_or(codec.pad_id()),
        ]
    } else {
        r.response_ids.clone()
    }
}

/// `count` question indices, without replacement until every question has been drawn.
fn draw_questions(
    pool: &mut Vec<usize>,
    n: usize,
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if pool.is_empty() {
            pool.extend(0..n);
            pool.shuffle(rng);
        }
        out.push(pool.pop().expect("refilled above"));
    }
    out
}

/// The log-probs of every microbatch under the policy before this step's updates (the
/// "old" policy of the clipped ratio), on the inner backend: no graph kept.
fn old_log_probs<B, P>(
    policy: &P,
    prompts: &[Vec<u32>],
    responses: &[Vec<u32>],
    pad_id: u32,
    micro: usize,
    device: &B::Device,
) -> Result<Vec<Tensor<B::InnerBackend, 2>>>
where
    B: AutodiffBackend,
    P: TrainablePolicy<B>,
{
    let frozen = policy.valid();
    (0..prompts.len())
        .step_by(micro)
        .map(|s| {
            let batch = TokenBatch::<B::InnerBackend>::new(
                &prompts[s..s + micro],
                &responses[s..s + micro],
                pad_id,
                device,
            );
            Ok(score_responses(&frozen, &batch, false)?.log_probs)
        })
        .collect()
}

/// One microbatch's scaled loss under the configured length normalisation.
fn policy_loss<B: AutodiffBackend>(
    log_probs: Tensor<B, 2>,
    mask: burn::tensor::Tensor<B, 2, burn::tensor::Bool>,
    accumulation: usize,
    loss_type: LossType,
    inputs: PolicyGradientInputs<B>,
    config: &GrpoConfig,
) -> Result<(Tensor<B, 1>, crate::losses::PolicyGradientLoss<B>)> {
    match config.length_normalization {
        LengthNorm::MaskedMean => {
            grpo_microbatch_train_step(log_probs, mask, accumulation, loss_type, inputs)
        }
        LengthNorm::MaskedNormalize => {
            let per_token = compute_policy_gradient_loss(log_probs, loss_type, inputs)?;
            let per_sequence = masked_normalize(
                per_token.loss.clone(),
                mask,
                Some(1),
                config.sampling_max_tokens as f64,
            )?;
            Ok((per_sequence.mean() / accumulation as f64, per_token))
        }
    }
}
