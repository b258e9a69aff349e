//! The scheduler: a waiting queue, a fixed set of cache rows, one batched prefill for the
//! newly admitted prompts and one batched decode per step.

use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::time::Instant;

use burn::tensor::{Tensor, backend::Backend};
use rayon::prelude::*;

use super::device_draw::{DrawInput, draw_on_device};
use super::model::CausalLm;
use super::output::{Completion, Event};
use super::params::Request;
use super::row::Row;
use super::text::Detokenizer;
use super::timing::StepTiming;
use crate::error::{LmError, Result};

/// Generates completions for many requests over one model and one KV cache.
pub struct Engine<'m, B: Backend, M: CausalLm<B>> {
    model: &'m M,
    detok: Option<&'m dyn Detokenizer>,
    max_rows: usize,
    max_len: usize,
    seed: u64,
    /// Made on the first `generate` and reused: prefill overwrites a row.
    cache: Option<M::Cache>,
    /// Draw greedy and whole-vocabulary samples on the model's device ([`device_draw`]).
    device_sampling: bool,
    /// Decode-step timing, when switched on ([`Self::with_step_timing`]).
    timing: Option<StepTiming>,
    _backend: PhantomData<B>,
}

impl<'m, B: Backend, M: CausalLm<B>> Engine<'m, B, M> {
    /// An engine decoding at most `max_batch_rows` sequences at once, each at most
    /// `max_len` positions long (prompt plus generated tokens).
    pub fn new(model: &'m M, max_batch_rows: usize, max_len: usize) -> Result<Self> {
        if max_batch_rows == 0 {
            return Err(LmError::config("max_batch_rows", "must be >= 1"));
        }
        if model.vocab_size() == 0 {
            return Err(LmError::config(
                "vocab_size",
                "the model has an empty vocabulary",
            ));
        }
        if max_len < 2 || max_len > model.max_positions() {
            return Err(LmError::config(
                "max_len",
                format!(
                    "must be in 2..={} (the model's max_positions), got {max_len}",
                    model.max_positions()
                ),
            ));
        }
        Ok(Self {
            model,
            detok: None,
            max_rows: max_batch_rows,
            max_len,
            seed: 0,
            cache: None,
            device_sampling: true,
            timing: None,
            _backend: PhantomData,
        })
    }

    /// Decodes `text` and enables stop strings.
    pub fn with_detokenizer(mut self, detok: &'m dyn Detokenizer) -> Self {
        self.detok = Some(detok);
        self
    }

    /// Seeds the requests whose `params.seed` is `None` (stream = request id); default 0.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether greedy and whole-vocabulary sampling run on the model's device (default);
    /// off, every step reads the logits back and samples on the host. Both follow the same
    /// per-request RNG stream; they can differ only where f32 rounding moves a draw across
    /// the boundary between two tokens.
    pub fn with_device_sampling(mut self, on: bool) -> Self {
        self.device_sampling = on;
        self
    }

    /// Times every decode step ([`StepTiming`]: host launch time, device wait, sampling),
    /// at the cost of one device sync per step.
    pub fn with_step_timing(mut self, on: bool) -> Self {
        self.timing = on.then(StepTiming::default);
        self
    }

    /// The timing summed since the last call (or since it was switched on), and restarts
    /// it; `None` when timing is off.
    pub fn take_step_timing(&mut self) -> Option<StepTiming> {
        self.timing.as_mut().map(std::mem::take)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Runs every request to completion and returns the completions in request order.
    /// All requests are checked before any work starts; errors name the request id.
    pub fn generate(
        &mut self,
        requests: Vec<Request>,
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<Vec<Completion>> {
        self.check(&requests)?;
        let (model, max_rows, max_len) = (self.model, self.max_rows, self.max_len);
        let mut cache = match self.cache.take() {
            Some(cache) => cache,
            None => model.new_cache(max_rows, max_len),
        };
        let mut timing = self.timing.take();
        let out = self.run(&mut cache, requests, timing.as_mut(), &mut on_event);
        self.timing = timing;
        self.cache = Some(cache);
        out
    }

    fn run(
        &self,
        cache: &mut M::Cache,
        requests: Vec<Request>,
        mut timing: Option<&mut StepTiming>,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<Vec<Completion>> {
        let (model, max_rows) = (self.model, self.max_rows);
        let mut results: Vec<Option<Completion>> = vec![None; requests.len()];
        let mut queue: VecDeque<(usize, Request)> = requests.into_iter().enumerate().collect();
        let mut slots: Vec<Option<Row>> = (0..max_rows).map(|_| None).collect();
        loop {
            // Admit: fill every free row from the queue with one prefill.
            let free: Vec<usize> = (0..max_rows).filter(|&r| slots[r].is_none()).collect();
            let admitted: Vec<(usize, (usize, Request))> = free
                .into_iter()
                .zip(std::iter::from_fn(|| queue.pop_front()))
                .collect();
            if !admitted.is_empty() {
                let rows: Vec<usize> = admitted.iter().map(|(r, _)| *r).collect();
                let prompts: Vec<&[u32]> = admitted
                    .iter()
                    .map(|(_, (_, q))| q.prompt.as_slice())
                    .collect();
                let logits = model.prefill(cache, &rows, &prompts);
                for (r, (index, request)) in admitted {
                    slots[r] = Some(Row::new(index, request, self.seed));
                }
                self.step_rows(&mut slots, &rows, logits, "prefill", &mut results, on_event)?;
            }
            // Decode: one step over every active row.
            let rows: Vec<usize> = (0..max_rows).filter(|&r| slots[r].is_some()).collect();
            if rows.is_empty() {
                if queue.is_empty() {
                    break;
                }
                continue;
            }
            let tokens: Vec<u32> = rows
                .iter()
                .filter_map(|&r| slots[r].as_ref().and_then(Row::last_token))
                .collect();
            let started = Instant::now();
            let logits = model.decode(cache, &rows, &tokens);
            let Some(timing) = timing.as_deref_mut() else {
                self.step_rows(&mut slots, &rows, logits, "decode", &mut results, on_event)?;
                continue;
            };
            let enqueued = Instant::now();
            B::sync(&logits.device())
                .map_err(|e| LmError::Kernel(format!("syncing the device after a step: {e:?}")))?;
            let synced = Instant::now();
            self.step_rows(&mut slots, &rows, logits, "decode", &mut results, on_event)?;
            timing.add(enqueued - started, synced - enqueued, synced.elapsed());
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Samples one token for each of `rows` from `logits` (`[rows.len(), vocab]`), streams
    /// the events and frees the rows that finished.
    fn step_rows(
        &self,
        slots: &mut [Option<Row>],
        rows: &[usize],
        logits: Tensor<B, 2>,
        what: &str,
        results: &mut [Option<Completion>],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<()> {
        let vocab = self.model.vocab_size();
        check_logits(&logits, rows.len(), vocab, what)?;
        let (detok, max_len) = (self.detok, self.max_len);
        // Rows are listed in ascending order, so the active slots line up with the logits.
        let mut active: Vec<&mut Row> = slots
            .iter_mut()
            .enumerate()
            .filter(|(r, _)| rows.binary_search(r).is_ok())
            .filter_map(|(_, s)| s.as_mut())
            .collect();
        let on_device = self.device_sampling && active.iter().all(|r| r.samples_on_device(vocab));
        let draws = if on_device {
            let inputs: Vec<DrawInput> = active.iter_mut().map(|r| r.device_input()).collect();
            draw_on_device(logits.clone(), &inputs)?
        } else {
            vec![None; active.len()]
        };
        // The host samples the rest: every row off the device path, and the rare rows
        // whose logits had no finite normaliser (it reports those as errors or takes an
        // infinite logit).
        if draws.iter().any(Option::is_none) {
            let host = read_logits(logits, what)?;
            active
                .par_iter_mut()
                .zip(host.par_chunks_exact(vocab))
                .zip(&draws)
                .filter(|(_, draw)| draw.is_none())
                .map(|((row, l), _)| row.step(l, detok, max_len))
                .collect::<Result<Vec<()>>>()?;
        }
        for (row, draw) in active.iter_mut().zip(&draws) {
            if let Some((token, logprob)) = *draw {
                row.accept(token, Some(logprob), detok, max_len);
            }
        }
        for &r in rows {
            let Some(row) = &slots[r] else { continue };
            let (token, logprob, text) = row.last_event();
            on_event(Event::Token {
                id: row.id,
                token,
                logprob,
                text,
            });
            if row.is_finished()
                && let Some(row) = slots[r].take()
            {
                let index = row.index;
                if let Some(done) = row.into_completion() {
                    on_event(Event::Finished(&done));
                    results[index] = Some(done);
                }
            }
        }
        Ok(())
    }

    /// Rejects what cannot be generated before any model call, naming the request.
    fn check(&self, requests: &[Request]) -> Result<()> {
        let vocab = self.model.vocab_size();
        let mut ids = HashSet::with_capacity(requests.len());
        for q in requests {
            let id = q.id;
            let field = |f: &str| format!("request {id}: {f}");
            if !ids.insert(id) {
                return Err(LmError::config(
                    "requests",
                    format!("id {id} appears twice"),
                ));
            }
            q.params.validate().map_err(|e| match e {
                LmError::Config { field: f, reason } => LmError::config(field(&f), reason),
                other => other,
            })?;
            if q.prompt.is_empty() {
                return Err(LmError::config(field("prompt"), "is empty"));
            }
            if q.prompt.len() >= self.max_len {
                return Err(LmError::config(
                    field("prompt"),
                    format!(
                        "has {} tokens, leaving no room to generate within max_len {}",
                        q.prompt.len(),
                        self.max_len
                    ),
                ));
            }
            if let Some(i) = q.prompt.iter().position(|&t| t as usize >= vocab) {
                return Err(LmError::config(
                    field(&format!("prompt[{i}]")),
                    format!("token {} is outside the vocabulary of {vocab}", q.prompt[i]),
                ));
            }
            if !q.params.stop.is_empty() && self.detok.is_none() {
                return Err(LmError::config(
                    field("stop"),
                    "stop strings need a detokenizer (Engine::with_detokenizer)",
                ));
            }
        }
        Ok(())
    }
}

fn check_logits<B: Backend>(
    logits: &Tensor<B, 2>,
    rows: usize,
    vocab: usize,
    what: &str,
) -> Result<()> {
    let dims = logits.dims();
    if dims != [rows, vocab] {
        return Err(LmError::shape(
            format!("{what} logits"),
            format!("[{rows}, {vocab}]"),
            &dims,
        ));
    }
    Ok(())
}

/// The logits as one f32 buffer: one transfer per step.
fn read_logits<B: Backend>(logits: Tensor<B, 2>, what: &str) -> Result<Vec<f32>> {
    let data = logits
        .try_into_data()
        .map_err(|e| LmError::Kernel(format!("reading the {what} logits: {e:?}")))?;
    let dtype = format!("{:?}", data.dtype);
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| LmError::Dtype {
            tensor: format!("{what} logits"),
            dtype,
            reason: format!("{e:?}"),
        })
}
