//! Scoring prompt+response sequences under a policy: per-token log-probs of the response
//! (and entropies), the quantities every alignment loss is built from.

use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use lm_core::Result;

use crate::losses::{compute_entropy, log_probs_from_logits};
use crate::policy::Policy;
use crate::sft_data::batch_from_ids;

/// A right-padded batch of prompt+response sequences on the device, shifted by one
/// (see [`batch_from_ids`]): `response_mask` is true where the label is a response token.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    pub input_ids: Tensor<B, 2, Int>,
    pub labels: Tensor<B, 2, Int>,
    pub response_mask: Tensor<B, 2, Bool>,
    /// Number of true entries of `response_mask`.
    pub response_tokens: usize,
}

impl<B: Backend> TokenBatch<B> {
    pub fn new(
        prompt_ids: &[Vec<u32>],
        response_ids: &[Vec<u32>],
        pad_id: u32,
        device: &B::Device,
    ) -> Self {
        let batch = batch_from_ids(prompt_ids, response_ids, pad_id);
        let rows = batch.input_ids.len();
        let cols = batch.input_ids.first().map_or(0, Vec::len);
        let ints = |m: &[Vec<u32>]| -> Tensor<B, 2, Int> {
            let flat: Vec<i64> = m.iter().flatten().map(|&x| x as i64).collect();
            Tensor::from_data(TensorData::new(flat, [rows, cols]), device)
        };
        let mask: Vec<bool> = batch.response_mask.iter().flatten().copied().collect();
        let response_tokens = mask.iter().filter(|&&m| m).count();
        Self {
            input_ids: ints(&batch.input_ids),
            labels: ints(&batch.labels),
            response_mask: Tensor::from_data(TensorData::new(mask, [rows, cols]), device),
            response_tokens,
        }
    }

    pub fn rows(&self) -> usize {
        self.input_ids.dims()[0]
    }
}

/// `log p(label_t | tokens_<t)` for every position `[rows, T]`, and the entropy of each
/// next-token distribution when asked (the course's `get_response_log_probs`).
#[derive(Debug, Clone)]
pub struct ResponseScores<B: Backend> {
    pub log_probs: Tensor<B, 2>,
    pub entropy: Option<Tensor<B, 2>>,
}

pub fn score_responses<B: Backend, P: Policy<B>>(
    policy: &P,
    batch: &TokenBatch<B>,
    with_entropy: bool,
) -> Result<ResponseScores<B>> {
    let logits = policy.sequence_logits(batch.input_ids.clone())?;
    let entropy = if with_entropy {
        Some(compute_entropy::<B, 3, 2>(logits.clone().detach())?)
    } else {
        None
    };
    let log_probs = log_probs_from_logits(logits, batch.labels.clone())?;
    Ok(ResponseScores { log_probs, entropy })
}

/// Each row's summed response log-prob `[rows]` (DPO's sequence log-likelihood).
pub fn response_log_prob_sums<B: Backend>(
    log_probs: Tensor<B, 2>,
    response_mask: Tensor<B, 2, Bool>,
) -> Tensor<B, 1> {
    let rows = log_probs.dims()[0];
    log_probs
        .mask_fill(response_mask.bool_not(), 0.0)
        .sum_dim(1)
        .reshape([rows])
}
