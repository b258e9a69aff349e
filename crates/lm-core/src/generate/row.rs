//! One active request in one cache row: its RNG, tokens, text and stop checks.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::device_draw::{DrawInput, on_device};
use super::output::{Completion, FinishReason};
use super::params::{Request, SamplingParams};
use super::sampling::{Scratch, sample_token};
use super::text::{Detokenizer, IncrementalText, find_stop, floor_boundary};
use crate::error::{LmError, Result};

/// A request's RNG: its own seed, or the engine seed on the stream named by its id, so
/// its draws never depend on the other requests in the batch.
pub fn request_rng(params: &SamplingParams, id: u64, engine_seed: u64) -> ChaCha8Rng {
    match params.seed {
        Some(seed) => ChaCha8Rng::seed_from_u64(seed),
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(engine_seed);
            rng.set_stream(id);
            rng
        }
    }
}

pub struct Row {
    /// Position of the request in the `generate` call, for ordering the results.
    pub index: usize,
    pub id: u64,
    prompt_len: usize,
    params: SamplingParams,
    rng: ChaCha8Rng,
    scratch: Scratch,
    tokens: Vec<u32>,
    logprobs: Option<Vec<f32>>,
    text: IncrementalText,
    /// Bytes of `text` already streamed, and the new piece of the last step.
    streamed: usize,
    delta: Range<usize>,
    /// Bytes held back while unfinished: the longest stop string minus one.
    hold: usize,
    finish: Option<FinishReason>,
}

impl Row {
    pub fn new(index: usize, request: Request, engine_seed: u64) -> Self {
        let Request { id, prompt, params } = request;
        let hold = params.stop.iter().map(String::len).max().unwrap_or(1) - 1;
        Self {
            index,
            id,
            prompt_len: prompt.len(),
            rng: request_rng(&params, id, engine_seed),
            scratch: Scratch::default(),
            tokens: Vec::with_capacity(params.max_tokens.min(4096)),
            logprobs: params.logprobs.then(Vec::new),
            text: IncrementalText::default(),
            streamed: 0,
            delta: 0..0,
            hold,
            finish: None,
            params,
        }
    }

    pub fn last_token(&self) -> Option<u32> {
        self.tokens.last().copied()
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// Samples the next token from this row's logits on the host and applies the stop
    /// conditions.
    pub fn step(
        &mut self,
        logits: &[f32],
        detok: Option<&dyn Detokenizer>,
        max_len: usize,
    ) -> Result<()> {
        let draw = sample_token(logits, &self.params, &mut self.rng, &mut self.scratch)
            .ok_or_else(|| {
                LmError::Kernel(format!(
                    "request {}: the model's logits for generated token {} have no finite \
                     value (all NaN or -inf)",
                    self.id,
                    self.tokens.len()
                ))
            })?;
        let logprob = self.logprobs.is_some().then(|| draw.logprob(logits));
        self.accept(draw.token, logprob, detok, max_len);
        Ok(())
    }

    /// What a device draw needs from this row, consuming the one uniform the host sampler
    /// would have drawn (none for greedy rows), so both paths follow the same RNG stream.
    pub fn device_input(&mut self) -> DrawInput {
        let greedy = self.params.is_greedy();
        DrawInput {
            greedy,
            temperature: self.params.temperature,
            uniform: if greedy {
                0.0
            } else {
                self.rng.random::<f64>()
            },
        }
    }

    /// Whether this row's sampling can run on the device.
    pub fn samples_on_device(&self, vocab: usize) -> bool {
        on_device(&self.params, vocab)
    }

    /// Appends a token drawn elsewhere (`logprob` at temperature 1) and applies the stop
    /// conditions.
    pub fn accept(
        &mut self,
        token: u32,
        logprob: Option<f32>,
        detok: Option<&dyn Detokenizer>,
        max_len: usize,
    ) {
        if let (Some(lps), Some(lp)) = (&mut self.logprobs, logprob) {
            lps.push(lp);
        }
        self.tokens.push(token);
        self.finish = self.check_stop(token, detok, max_len);
        if let (Some(finish), Some(detok)) = (&self.finish, detok)
            && !matches!(finish, FinishReason::StopString(_))
        {
            let text_tokens = match finish {
                FinishReason::StopToken(_) => &self.tokens[..self.tokens.len() - 1],
                _ => &self.tokens[..],
            };
            self.text.finish(detok, text_tokens);
        }
        let text = self.text.text();
        let end = if self.is_finished() {
            text.len()
        } else {
            floor_boundary(text, text.len().saturating_sub(self.hold))
        };
        let start = self.streamed.min(end);
        self.delta = start..end;
        self.streamed = end.max(self.streamed);
    }

    fn check_stop(
        &mut self,
        token: u32,
        detok: Option<&dyn Detokenizer>,
        max_len: usize,
    ) -> Option<FinishReason> {
        if self.params.stop_token_ids.contains(&token) {
            return Some(FinishReason::StopToken(token));
        }
        if let Some(detok) = detok {
            let old_len = self.text.update(detok, &self.tokens);
            if let Some((at, s)) = find_stop(self.text.text(), old_len, &self.params.stop) {
                self.text.truncate(at);
                return Some(FinishReason::StopString(self.params.stop[s].clone()));
            }
        }
        if self.tokens.len() >= self.params.max_tokens {
            Some(FinishReason::Length)
        } else if self.prompt_len + self.tokens.len() >= max_len {
            Some(FinishReason::ContextFull)
        } else {
            None
        }
    }

    /// The last step's token, log-prob and newly final text.
    pub fn last_event(&self) -> (u32, Option<f32>, &str) {
        let token = self.tokens.last().copied().unwrap_or_default();
        let logprob = self.logprobs.as_ref().and_then(|l| l.last().copied());
        (token, logprob, &self.text.text()[self.delta.clone()])
    }

    /// The finished request; `None` while it is still generating.
    pub fn into_completion(self) -> Option<Completion> {
        Some(Completion {
            id: self.id,
            prompt_len: self.prompt_len,
            tokens: self.tokens,
            logprobs: self.logprobs,
            text: self.text.into_text(),
            finish: self.finish?,
        })
    }
}
