//! Batched text generation over any [`CausalLm`]: KV cache rows, continuous batching,
//! sampling, stop conditions and the log-probs RL needs (the project's stand-in for vLLM).
//!
//! # Scheduling
//! [`Engine::generate`] puts the requests in a waiting queue and owns one KV cache of
//! `max_batch_rows` rows. Each step it fills every free row from the queue with **one**
//! batched [`CausalLm::prefill`] (which yields each new request's first token), then runs
//! **one** [`CausalLm::decode`] over all active rows. A row whose request finishes is freed
//! at once and refilled at the next step (continuous batching). Completions come back in
//! request order; [`Event`]s stream each token and each finished request meanwhile.
//!
//! # Sampling
//! Greedy rows and rows sampled from the whole vocabulary (no top-k / top-p) are drawn on
//! the model's device (`device_draw`), which sends back one token and log-prob per row.
//! Otherwise each step reads the logits of the whole batch to the CPU once and samples rows
//! in parallel (rayon); both use the same draws, see [`Engine::with_device_sampling`].
//! `temperature == 0` is greedy: the first index among equal maxima. Otherwise: logits /
//! temperature, then top-k (quickselect), then top-p over the renormalised top-k
//! probabilities (the smallest most-likely set whose mass reaches `top_p`, at least one
//! token, ties to the lower id; a quickselect on mass, no full sort of the vocabulary),
//! then one uniform draw. Every request has its own ChaCha8 RNG, seeded by
//! `params.seed` or, when that is `None`, by the engine seed on stream `id`; a request's
//! output therefore does not depend on the other requests, the batch size or its row.
//!
//! # Log-probs
//! With `params.logprobs`, each token's log-prob is `log_softmax(logits)[token]` of the
//! model's raw logits (temperature 1, before top-k/top-p): the policy's log-probability
//! that RL objectives need, computed with max subtraction and an f64 sum.
//!
//! # Stopping (checked in this order after every token)
//! 1. `stop_token_ids`: the token stays in `tokens` (and `logprobs`) but not in `text`.
//!    Put the model's EOS here; the engine knows no EOS of its own.
//! 2. `stop` strings, searched in the decoded generated text (not the prompt): `text` is
//!    cut before the earliest match; `tokens` keep everything up to and including the
//!    token that completed the string. Needs a [`Detokenizer`].
//! 3. `max_tokens` generated: [`FinishReason::Length`].
//! 4. prompt + generated tokens reach the engine's `max_len`: [`FinishReason::ContextFull`].
//!
//! A prompt that leaves no room to generate (`len >= max_len`), an empty prompt, a token
//! outside the vocabulary, invalid params or duplicate ids are errors naming the request,
//! raised before any model call. Without a detokenizer `text` is empty.

mod device_draw;
mod engine;
mod model;
mod output;
mod params;
mod recompute;
mod row;
mod rowops;
mod sampling;
mod select;
mod text;
mod timing;

#[cfg(test)]
mod tests;

pub use engine::Engine;
pub use model::CausalLm;
pub use output::{Completion, Event, FinishReason};
pub use params::{Request, SamplingParams};
pub use recompute::TokenHistory;
pub use sampling::{Draw, Scratch, argmax, log_softmax_at, sample_token};
pub use text::{Detokenizer, IncrementalText};
pub use timing::{StepMillis, StepTiming};

/// `len` rounded up to a multiple of `multiple`, but not past `limit` (nor below `len`).
/// Padding sequence and cache lengths to such buckets makes GPU kernel shapes repeat across
/// steps and batches: each new shape costs a kernel compile and a matmul autotune.
pub fn bucketed_len(len: usize, multiple: usize, limit: usize) -> usize {
    len.next_multiple_of(multiple).min(limit).max(len)
}
