//! What the alignment loops need from a model and its tokenizer.
//!
//! A [`Policy`] is a burn module that scores whole right-padded sequences (for the loss,
//! with gradients on an autodiff backend) and, through [`CausalLm`], samples rollouts with
//! the generation engine (on its inner backend, `policy.valid()`). A [`TextCodec`] turns
//! text into ids and back, for pretrained tokenizers and the lab's character tokenizer alike.

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use lm_core::generate::{CausalLm, bucketed_len};
use lm_core::pretrained::Decoder;
use lm_core::pretrained::tokenizer::TextTokenizer;
use lm_core::{Result, TransformerLm};

/// A causal LM the alignment loops can train and sample from.
pub trait Policy<B: Backend>: Module<B> + CausalLm<B> {
    /// Logits `[rows, T, vocab]` of right-padded rows `ids [rows, T]` (token `t` at position
    /// `t`; causal attention keeps the trailing padding out of the real tokens).
    fn sequence_logits(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>>;
}

impl<B: Backend> Policy<B> for Decoder<B> {
    fn sequence_logits(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        padded_logits(ids, self.max_positions(), |ids| {
            let [rows, t] = ids.dims();
            let positions: Vec<i64> = (0..rows).flat_map(|_| 0..t as i64).collect();
            let positions = Tensor::from_data(TensorData::new(positions, [rows, t]), &ids.device());
            self.forward(ids, positions, None)
        })
    }
}

impl<B: Backend> Policy<B> for TransformerLm<B> {
    fn sequence_logits(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        padded_logits(ids, self.max_positions(), |ids| self.try_forward(ids))
    }
}

/// Sequences are right-padded to a multiple of this many positions before the forward.
const PAD_TO: usize = 16;

/// `forward` over `ids [rows, T]` right-padded to a multiple of [`PAD_TO`] (within `limit`
/// positions), with the logits cut back to `T`: batches of nearby lengths then share kernel
/// shapes, which on GPUs saves a compile and a matmul autotune per new length. Causal
/// attention keeps the padding out of the real positions.
fn padded_logits<B: Backend>(
    ids: Tensor<B, 2, Int>,
    limit: usize,
    forward: impl FnOnce(Tensor<B, 2, Int>) -> Result<Tensor<B, 3>>,
) -> Result<Tensor<B, 3>> {
    let [rows, t] = ids.dims();
    let padded = bucketed_len(t, PAD_TO, limit);
    if padded == t {
        return forward(ids);
    }
    let pad = Tensor::zeros([rows, padded - t], &ids.device());
    let logits = forward(Tensor::cat(vec![ids, pad], 1))?;
    let vocab = logits.dims()[2];
    Ok(logits.slice([0..rows, 0..t, 0..vocab]))
}

/// Text ↔ token ids, as the alignment loops use them: no special tokens added on encode,
/// special tokens dropped on decode, and the ids that end a generation.
pub trait TextCodec: Sync {
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    fn decode(&self, ids: &[u32]) -> String;
    /// Ids that end a rollout (EOS); may be empty when stop strings end it.
    fn stop_token_ids(&self) -> Vec<u32>;
    /// The id used to right-pad batches (never scored: padding is masked out).
    fn pad_id(&self) -> u32;
    fn vocab_size(&self) -> usize;
}

impl TextCodec for TextTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        TextTokenizer::encode(self, text, false)
    }

    fn decode(&self, ids: &[u32]) -> String {
        // Ids come from the model's own vocabulary, the only failure `decode` reports.
        TextTokenizer::decode(self, ids, true).unwrap_or_default()
    }

    fn stop_token_ids(&self) -> Vec<u32> {
        self.eos_token_ids()
    }

    fn pad_id(&self) -> u32 {
        self.eos_token_ids().first().copied().unwrap_or(0)
    }

    fn vocab_size(&self) -> usize {
        TextTokenizer::vocab_size(self)
    }
}
