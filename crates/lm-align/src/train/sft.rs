//! Supervised fine-tuning on (prompt, response) token pairs: response-only loss,
//! microbatches and gradient accumulation.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use lm_core::{LmError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    EvalHook, MetricsLog, OptimConfig, PolicyOptimizer, TrainablePolicy, eval_at, read_scalar,
};
use crate::losses::sft_microbatch_train_step;
use crate::scoring::{TokenBatch, score_responses};

/// One SFT example: the prompt's ids and the response's ids (only the response is scored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub prompt_ids: Vec<u32>,
    pub response_ids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Examples per forward/backward pass; `batch_size / microbatch_size` are accumulated.
    pub microbatch_size: usize,
    /// Steps of linear warm-up to `optim.lr`, constant after.
    pub warmup_steps: usize,
    /// Divides each sequence's summed response log-likelihood (the course's
    /// `normalize_constant`).
    pub normalize_constant: f64,
    pub eval_every: usize,
    pub seed: u64,
    pub optim: OptimConfig,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            batch_size: 32,
            microbatch_size: 2,
            warmup_steps: 0,
            normalize_constant: 1.0,
            eval_every: 0,
            seed: 0,
            optim: OptimConfig::default(),
        }
    }
}

impl SftConfig {
    pub fn gradient_accumulation_steps(&self) -> Result<usize> {
        accumulation_steps(self.batch_size, self.microbatch_size, "batch_size")
    }

    /// The learning rate of 1-based step `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step <= self.warmup_steps {
            self.optim.lr * step as f64 / (self.warmup_steps + 1) as f64
        } else {
            self.optim.lr
        }
    }
}

/// `batch / micro`, which must divide exactly.
pub(super) fn accumulation_steps(batch: usize, micro: usize, field: &str) -> Result<usize> {
    if micro == 0 || batch == 0 || !batch.is_multiple_of(micro) {
        return Err(LmError::config(
            field,
            format!("{batch} must be a positive multiple of the microbatch size {micro}"),
        ));
    }
    Ok(batch / micro)
}

/// What one SFT step logs.
#[derive(Debug, Clone, Serialize)]
pub struct SftStep {
    pub step: usize,
    pub lr: f64,
    /// Mean negative log-likelihood per response token.
    pub loss: f64,
    pub grad_norm: f64,
    pub response_tokens: usize,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// Trains `policy` on `data` for `config.steps` steps (examples drawn in a seeded shuffled
/// order, reshuffled every pass). Returns the trained policy and every step's record.
pub fn train_sft<B, P>(
    mut policy: P,
    data: &[TokenPair],
    pad_id: u32,
    config: &SftConfig,
    log: &mut MetricsLog,
    mut eval: Option<&mut EvalHook<'_, P::InnerModule>>,
) -> Result<(P, Vec<SftStep>)>
where
    B: AutodiffBackend,
    P: TrainablePolicy<B>,
{
    let accumulation = config.gradient_accumulation_steps()?;
    if data.is_empty() {
        return Err(LmError::config("sft data", "no examples to train on"));
    }
    if let Some(i) = data.iter().position(|p| p.response_ids.is_empty()) {
        return Err(LmError::config(
            "sft data",
            format!("example {i} has an empty response (nothing to learn)"),
        ));
    }
    let limit = policy.max_positions();
    if let Some(i) = data
        .iter()
        .position(|p| p.prompt_ids.len() + p.response_ids.len() > limit)
    {
        let len = data[i].prompt_ids.len() + data[i].response_ids.len();
        return Err(LmError::config(
            "sft data",
            format!("example {i} has {len} tokens, more than the model's {limit} positions"),
        ));
    }
    let device = policy.devices().into_iter().next().unwrap_or_default();
    let mut optimizer = PolicyOptimizer::<B>::new(config.optim.clone());
    let mut order = EpochOrder::new(data.len(), config.seed);
    let mut records = Vec::with_capacity(config.steps);
    for step in 1..=config.steps {
        let start = Instant::now();
        let lr = config.lr_at(step);
        let (mut nll, mut tokens) = (0.0, 0);
        for _ in 0..accumulation {
            let picked: Vec<&TokenPair> = (0..config.microbatch_size)
                .map(|_| &data[order.next()])
                .collect();
            let prompts: Vec<Vec<u32>> = picked.iter().map(|p| p.prompt_ids.clone()).collect();
            let responses: Vec<Vec<u32>> = picked.iter().map(|p| p.response_ids.clone()).collect();
            let batch = TokenBatch::<B>::new(&prompts, &responses, pad_id, &device);
            let scores = score_responses(&policy, &batch, false)?;
            nll -= read_scalar(
                scores
                    .log_probs
                    .clone()
                    .detach()
                    .mask_fill(batch.response_mask.clone().bool_not(), 0.0)
                    .sum()
                    .reshape([1]),
            );
            tokens += batch.response_tokens;
            let loss = sft_microbatch_train_step(
                scores.log_probs,
                batch.response_mask,
                accumulation,
                config.normalize_constant,
            )?;
            optimizer.accumulate(&policy, loss);
        }
        let (updated, grad_norm) = optimizer.step(policy, lr);
        policy = updated;
        let eval_accuracy = eval_at(&mut eval, &policy, step, config.eval_every, config.steps)?;
        let record = SftStep {
            step,
            lr,
            loss: nll / tokens.max(1) as f64,
            grad_norm,
            response_tokens: tokens,
            seconds: start.elapsed().as_secs_f64(),
            eval_accuracy,
        };
        log.write(&record)?;
        records.push(record);
    }
    Ok((policy, records))
}

/// Indices `0..n` in a seeded random order, reshuffled at the end of every pass.
struct EpochOrder {
    order: Vec<usize>,
    at: usize,
    rng: ChaCha8Rng,
}

impl EpochOrder {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        Self { order, at: 0, rng }
    }

    fn next(&mut self) -> usize {
        if self.at == self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.at = 0;
        }
        self.at += 1;
        self.order[self.at - 1]
    }
}
