//! Sampling rollouts from a policy with the generation engine (the course's vLLM step).
//!
//! The course samples with `stop=["</answer>"], include_stop_str_in_output=True`. Our engine
//! cuts `text` before a stop string, so [`sample_rollouts`] appends the matched stop string
//! back. `response_ids` are the engine's sampled tokens, never a re-encoding of the text
//! (BPE re-encoding is lossy): they end at the token that completed the stop string (which
//! may carry a few characters past it, e.g. `"</answer>\n"`), and they **keep** a final stop
//! token (EOS). The EOS is the model's own action that ended the episode and has a
//! log-prob like any other token; scoring it teaches the policy when to stop. Its text is
//! empty, so `text` never shows it. An immediate EOS gives `response_ids == [eos]` and an
//! empty `text`, a valid (format-failing) rollout.

use burn::tensor::backend::Backend;
use lm_core::generate::{CausalLm, Engine, FinishReason, Request, SamplingParams};
use lm_core::{LmError, Result};
use serde::{Deserialize, Serialize};

use crate::policy::TextCodec;

/// How rollouts are batched and seeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// Sequences decoded at once (KV cache rows).
    pub max_batch_rows: usize,
    /// The most positions one sequence may hold (prompt + response).
    pub max_len: usize,
    /// Base seed; each sample's own seed derives from it, its prompt and sample index.
    /// Change it between GRPO steps to draw fresh rollouts.
    pub seed: u64,
}

/// One sampled response to one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    pub prompt_index: usize,
    pub sample_index: usize,
    pub prompt_ids: Vec<u32>,
    /// What the model generated: the ids the loss scores after `prompt_ids` (see the module
    /// doc for the stop string and EOS conventions).
    pub response_ids: Vec<u32>,
    /// The decoded response, with the stop string that ended it re-appended.
    pub text: String,
    /// `logprobs[i]` belongs to `response_ids[i]` (when `params.logprobs`).
    pub logprobs: Option<Vec<f32>>,
    pub finish: FinishReason,
}

/// Samples `samples_per_prompt` responses to every prompt. The samples of prompt `i` are
/// consecutive (a GRPO group), in sample order. Every sample has its own seed derived from
/// `(opts.seed, prompt index, sample index)` (`params.seed` is ignored), so the results do
/// not depend on `max_batch_rows` or on the other prompts. The codec's stop token ids are
/// added to `params.stop_token_ids`.
pub fn sample_rollouts<B: Backend, M: CausalLm<B>>(
    model: &M,
    codec: &dyn TextCodec,
    prompts: &[Vec<u32>],
    samples_per_prompt: usize,
    params: &SamplingParams,
    opts: &RolloutOptions,
) -> Result<Vec<Rollout>> {
    if samples_per_prompt == 0 {
        return Err(LmError::config("samples_per_prompt", "must be >= 1"));
    }
    check_prompts(prompts, opts.max_len)?;
    let mut params = params.clone();
    for id in codec.stop_token_ids() {
        if !params.stop_token_ids.contains(&id) {
            params.stop_token_ids.push(id);
        }
    }
    let requests: Vec<Request> = prompts
        .iter()
        .enumerate()
        .flat_map(|(p, prompt)| (0..samples_per_prompt).map(move |s| (p, s, prompt)))
        .enumerate()
        .map(|(id, (p, s, prompt))| {
            let params = SamplingParams {
                seed: Some(sample_seed(opts.seed, p, s)),
                ..params.clone()
            };
            Request::new(id as u64, prompt.clone(), params)
        })
        .collect();
    let detok = |ids: &[u32]| codec.decode(ids);
    // No more cache rows than requests (every row is decoded each step, busy or not), and
    // no longer rows than the longest prompt plus a full answer: `max_tokens` ends a
    // request before a full context would, so the outputs are the same.
    let rows = opts.max_batch_rows.min(requests.len()).max(1);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let max_len = opts.max_len.min(longest + params.max_tokens);
    let mut engine = Engine::new(model, rows, max_len)?.with_detokenizer(&detok);
    let completions = engine.generate(requests, |_| {})?;
    Ok(completions
        .into_iter()
        .map(|c| {
            let id = c.id as usize;
            let (p, s) = (id / samples_per_prompt, id % samples_per_prompt);
            let mut text = c.text;
            if let FinishReason::StopString(stop) = &c.finish {
                text.push_str(stop);
            }
            Rollout {
                prompt_index: p,
                sample_index: s,
                prompt_ids: prompts[p].clone(),
                response_ids: c.tokens,
                text,
                logprobs: c.logprobs,
                finish: c.finish,
            }
        })
        .collect())
}

/// Rejects prompts the engine cannot extend, naming the prompt (the engine would name the
/// flattened request instead).
fn check_prompts(prompts: &[Vec<u32>], max_len: usize) -> Result<()> {
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(LmError::config(format!("prompts[{i}]"), "is empty"));
        }
        if p.len() >= max_len {
            return Err(LmError::config(
                format!("prompts[{i}]"),
                format!(
                    "has {} tokens, leaving no room to generate within max_len {max_len}",
                    p.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The seed of sample `sample` of prompt `prompt`: splitmix64 rounds over the three
/// numbers, so nearby indices get unrelated seeds.
pub fn sample_seed(base: u64, prompt: usize, sample: usize) -> u64 {
    let a = splitmix64(base ^ 0x5851_f42d_4c95_7f2d);
    let b = splitmix64(a ^ prompt as u64);
    splitmix64(b ^ (sample as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
