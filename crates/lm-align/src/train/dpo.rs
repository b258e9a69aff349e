//! DPO: preference pairs, a frozen reference policy, the per-instance DPO loss.

use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use lm_core::{LmError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sft::accumulation_steps;
use super::{
    EvalHook, MetricsLog, OptimConfig, PolicyOptimizer, TrainablePolicy, eval_at, read_scalar,
};
use crate::losses::dpo_loss;
use crate::scoring::{TokenBatch, response_log_prob_sums, score_responses};

/// One preference: a prompt with a preferred and a dispreferred response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferencePair {
    pub prompt_ids: Vec<u32>,
    pub chosen_ids: Vec<u32>,
    pub rejected_ids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    pub beta: f64,
    pub steps: usize,
    /// Pairs per optimizer step (the course accumulates 64 single-pair passes).
    pub batch_size: usize,
    pub microbatch_size: usize,
    pub eval_every: usize,
    pub seed: u64,
    pub optim: OptimConfig,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            steps: 100,
            batch_size: 64,
            microbatch_size: 1,
            eval_every: 0,
            seed: 0,
            optim: OptimConfig {
                lr: 1e-6,
                ..OptimConfig::default()
            },
        }
    }
}

/// What one DPO step logs.
#[derive(Debug, Clone, Serialize)]
pub struct DpoStep {
    pub step: usize,
    pub loss: f64,
    /// Fraction of pairs whose implicit reward ranks chosen above rejected.
    pub reward_accuracy: f64,
    /// Mean `β·(Δpolicy − Δreference)`.
    pub reward_margin: f64,
    pub grad_norm: f64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// Trains `policy` by DPO against a frozen copy of itself as it is on entry.
pub fn train_dpo<B, P>(
    mut policy: P,
    pairs: &[PreferencePair],
    pad_id: u32,
    config: &DpoConfig,
    log: &mut MetricsLog,
    mut eval: Option<&mut EvalHook<'_, P::InnerModule>>,
) -> Result<(P, Vec<DpoStep>)>
where
    B: AutodiffBackend,
    P: TrainablePolicy<B>,
{
    let accumulation = accumulation_steps(config.batch_size, config.microbatch_size, "batch_size")?;
    if pairs.is_empty() {
        return Err(LmError::config("dpo data", "no preference pairs"));
    }
    let reference = policy.valid();
    let device = policy.devices().into_iter().next().unwrap_or_default();
    let mut optimizer = PolicyOptimizer::<B>::new(config.optim.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = Vec::new();
    let mut records = Vec::with_capacity(config.steps);
    for step in 1..=config.steps {
        let start = Instant::now();
        let (mut loss_sum, mut wins, mut margin) = (0.0, 0.0, 0.0);
        for _ in 0..accumulation {
            let picked: Vec<&PreferencePair> = (0..config.microbatch_size)
                .map(|_| {
                    if order.is_empty() {
                        order.extend(0..pairs.len());
                        order.shuffle(&mut rng);
                    }
                    &pairs[order.pop().expect("refilled above")]
                })
                .collect();
            // Chosen rows first, then rejected: one forward pass scores both.
            let prompts: Vec<Vec<u32>> = picked
                .iter()
                .chain(&picked)
                .map(|p| p.prompt_ids.clone())
                .collect();
            let responses: Vec<Vec<u32>> = picked
                .iter()
                .map(|p| p.chosen_ids.clone())
                .chain(picked.iter().map(|p| p.rejected_ids.clone()))
                .collect();
            let m = picked.len();
            let batch = TokenBatch::<B>::new(&prompts, &responses, pad_id, &device);
            let inner_batch =
                TokenBatch::<B::InnerBackend>::new(&prompts, &responses, pad_id, &device);
            let policy_sums = response_log_prob_sums(
                score_responses(&policy, &batch, false)?.log_probs,
                batch.response_mask.clone(),
            );
            let ref_sums: Tensor<B, 1> = Tensor::from_inner(response_log_prob_sums(
                score_responses(&reference, &inner_batch, false)?.log_probs,
                inner_batch.response_mask.clone(),
            ));
            let split = |t: Tensor<B, 1>| (t.clone().narrow(0, 0, m), t.narrow(0, m, m));
            let (pc, pr) = split(policy_sums);
            let (rc, rr) = split(ref_sums);
            let margins = ((pc.clone() - pr.clone()) - (rc.clone() - rr.clone()))
                .detach()
                .mul_scalar(config.beta);
            wins += read_scalar(margins.clone().greater_elem(0.0).float()) * m as f64;
            margin += read_scalar(margins) * m as f64;
            // The course's loss is per instance; average the microbatch, then accumulate.
            let loss = dpo_loss(pc, pr, rc, rr, config.beta)?.mean() / accumulation as f64;
            loss_sum += read_scalar(loss.clone().detach());
            optimizer.accumulate(&policy, loss);
        }
        let (updated, grad_norm) = optimizer.step(policy, config.optim.lr);
        policy = updated;
        let eval_accuracy = eval_at(&mut eval, &policy, step, config.eval_every, config.steps)?;
        let pairs_seen = config.batch_size as f64;
        let record = DpoStep {
            step,
            loss: loss_sum,
            reward_accuracy: wins / pairs_seen,
            reward_margin: margin / pairs_seen,
            grad_norm,
            seconds: start.elapsed().as_secs_f64(),
            eval_accuracy,
        };
        log.write(&record)?;
        records.push(record);
    }
    Ok((policy, records))
}
