//! The course's [`TransformerLm`] as a [`CausalLm`]: it has no KV cache, so each row keeps
//! its tokens and every step recomputes the rows' whole sequences (fine for lab-1 models
//! of a few hundred positions; the pretrained decoders cache).

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::CausalLm;
use crate::TransformerLm;

/// Granularity of the padded sequence length of a step.
const PAD_TO: usize = 32;

/// Each row's tokens so far.
#[derive(Debug, Clone)]
pub struct TokenHistory {
    rows: Vec<Vec<u32>>,
}

impl<B: Backend> TransformerLm<B> {
    /// Logits `[n, vocab]` after the last token of each sequence (right-padded into one
    /// batch: causal attention keeps the padding out of the real positions).
    fn last_logits(&self, seqs: &[&[u32]]) -> Tensor<B, 2> {
        let device = self.lm_head.weight.device();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(1);
        // Padded to a multiple of PAD_TO: the shapes change every PAD_TO steps rather than
        // every step (on GPUs each new shape compiles new fused kernels).
        let t = super::bucketed_len(longest, PAD_TO, self.context_length);
        let n = seqs.len();
        let mut ids = vec![0i64; n * t];
        for (i, s) in seqs.iter().enumerate() {
            for (j, &tok) in s.iter().enumerate() {
                ids[i * t + j] = tok as i64;
            }
        }
        let logits = self.forward(Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids, [n, t]),
            &device,
        ));
        let vocab = self.lm_head.d_out();
        let last: Vec<i64> = seqs
            .iter()
            .enumerate()
            .map(|(i, s)| (i * t + s.len() - 1) as i64)
            .collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [n]), &device);
        logits.reshape([n * t, vocab]).select(0, index)
    }
}

impl<B: Backend> CausalLm<B> for TransformerLm<B> {
    type Cache = TokenHistory;

    fn vocab_size(&self) -> usize {
        self.lm_head.d_out()
    }

    fn max_positions(&self) -> usize {
        self.context_length
    }

    fn new_cache(&self, rows: usize, _max_len: usize) -> TokenHistory {
        TokenHistory {
            rows: vec![Vec::new(); rows],
        }
    }

    fn prefill(
        &self,
        cache: &mut TokenHistory,
        rows: &[usize],
        prompts: &[&[u32]],
    ) -> Tensor<B, 2> {
        for (&row, prompt) in rows.iter().zip(prompts) {
            cache.rows[row] = prompt.to_vec();
        }
        self.last_logits(prompts)
    }

    fn decode(&self, cache: &mut TokenHistory, rows: &[usize], tokens: &[u32]) -> Tensor<B, 2> {
        for (&row, &tok) in rows.iter().zip(tokens) {
            cache.rows[row].push(tok);
        }
        let seqs: Vec<&[u32]> = rows.iter().map(|&r| cache.rows[r].as_slice()).collect();
        self.last_logits(&seqs)
    }
}
