//! What the generation engine needs from a model.

use burn::tensor::{Tensor, backend::Backend};

/// A causal LM that can be decoded incrementally through a KV cache of fixed rows.
///
/// The engine owns one cache of `rows` sequences; a row is filled by [`Self::prefill`] and
/// extended one token at a time by [`Self::decode`]. Rows are independent: each has its
/// own length, and a finished row is simply prefilled again with the next prompt
/// (continuous batching).
pub trait CausalLm<B: Backend> {
    /// Per-row key/value state; opaque to the engine.
    type Cache;

    fn vocab_size(&self) -> usize;

    /// The most positions one row may hold (prompt + generated tokens).
    fn max_positions(&self) -> usize;

    /// A cache of `rows` empty rows, each able to hold `max_len` tokens.
    fn new_cache(&self, rows: usize, max_len: usize) -> Self::Cache;

    /// Replaces the contents of cache rows `rows[i]` by `prompts[i]` (positions from 0) and
    /// returns the logits of each prompt's last token, `[rows.len(), vocab]` in f32.
    fn prefill(&self, cache: &mut Self::Cache, rows: &[usize], prompts: &[&[u32]]) -> Tensor<B, 2>;

    /// Appends `tokens[i]` to row `rows[i]` and returns its next-token logits,
    /// `[rows.len(), vocab]` in f32.
    fn decode(&self, cache: &mut Self::Cache, rows: &[usize], tokens: &[u32]) -> Tensor<B, 2>;
}
