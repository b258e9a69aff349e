//! A mock [`CausalLm`] whose logits are a known function of each row's token history, and
//! the engine tests that run on it.

mod checks;
mod device_draw;
mod engine;
mod sampling;

use std::sync::Mutex;

use burn::tensor::{Tensor, TensorData};

use super::*;

pub type B = burn::backend::NdArray<f32>;

/// How the mock turns a row's history (prompt + generated) into next-token logits.
#[derive(Clone)]
pub enum Logits {
    /// Strongly favours `(last + 1) % vocab`, with a little history-dependent noise.
    Next,
    /// Pseudo-random logits in `[0, 4)` that depend on the whole history.
    Hash,
    /// The same logits whatever the history.
    Fixed(Vec<f32>),
}

impl Logits {
    pub fn of(&self, history: &[u32], vocab: usize) -> Vec<f32> {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &t in history {
            h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
        }
        let noise = |j: usize| {
            let mut x = h ^ (j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (x >> 40) as f32 / (1u64 << 24) as f32 * 4.0
        };
        match self {
            Logits::Fixed(l) => l.clone(),
            Logits::Hash => (0..vocab).map(noise).collect(),
            Logits::Next => {
                let next = history.last().map_or(0, |&t| (t as usize + 1) % vocab);
                (0..vocab)
                    .map(|j| noise(j) * 0.25 + if j == next { 8.0 } else { 0.0 })
                    .collect()
            }
        }
    }
}

/// One model call as the mock saw it: the rows it touched.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Prefill(Vec<usize>),
    Decode(Vec<usize>),
}

pub struct Mock {
    pub vocab: usize,
    pub max_positions: usize,
    pub logits: Logits,
    pub calls: Mutex<Vec<Call>>,
}

impl Mock {
    pub fn new(vocab: usize, logits: Logits) -> Self {
        Self {
            vocab,
            max_positions: 64,
            logits,
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn log(&self, call: Call) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn rows_logits(&self, cache: &MockCache, rows: &[usize]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|&r| self.logits.of(&cache.rows[r], self.vocab))
            .collect();
        Tensor::from_data(
            TensorData::new(flat, [rows.len(), self.vocab]),
            &Default::default(),
        )
    }
}

pub struct MockCache {
    pub rows: Vec<Vec<u32>>,
    pub max_len: usize,
}

impl CausalLm<B> for Mock {
    type Cache = MockCache;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn new_cache(&self, rows: usize, max_len: usize) -> MockCache {
        MockCache {
            rows: vec![Vec::new(); rows],
            max_len,
        }
    }

    fn prefill(&self, cache: &mut MockCache, rows: &[usize], prompts: &[&[u32]]) -> Tensor<B, 2> {
        self.log(Call::Prefill(rows.to_vec()));
        for (&r, p) in rows.iter().zip(prompts) {
            assert!(p.len() <= cache.max_len, "prefill past the cache");
            cache.rows[r] = p.to_vec();
        }
        self.rows_logits(cache, rows)
    }

    fn decode(&self, cache: &mut MockCache, rows: &[usize], tokens: &[u32]) -> Tensor<B, 2> {
        self.log(Call::Decode(rows.to_vec()));
        assert_eq!(rows.len(), tokens.len());
        for (&r, &t) in rows.iter().zip(tokens) {
            assert!(!cache.rows[r].is_empty(), "decode into an empty row {r}");
            cache.rows[r].push(t);
            assert!(
                cache.rows[r].len() <= cache.max_len,
                "decode past the cache"
            );
        }
        self.rows_logits(cache, rows)
    }
}

/// Runs `requests` on an engine of `rows` rows, returning the completions and the events.
pub fn run(
    model: &Mock,
    rows: usize,
    max_len: usize,
    detok: Option<&dyn Detokenizer>,
    requests: Vec<Request>,
) -> (Vec<Completion>, Vec<(u64, u32, String)>) {
    let mut engine = Engine::new(model, rows, max_len).expect("engine");
    if let Some(d) = detok {
        engine = engine.with_detokenizer(d);
    }
    let mut events = Vec::new();
    let mut finished = Vec::new();
    let out = engine
        .generate(requests, |e| match e {
            Event::Token {
                id, token, text, ..
            } => events.push((id, token, text.to_string())),
            Event::Finished(c) => finished.push(c.clone()),
        })
        .expect("generate");
    // Every completion was announced once, after its last token.
    assert_eq!(finished.len(), out.len());
    for c in &finished {
        assert!(out.contains(c), "finished event for {} differs", c.id);
        let last = events.iter().rfind(|e| e.0 == c.id).map(|e| e.1);
        assert_eq!(last, c.tokens.last().copied());
    }
    (out, events)
}

/// Token `t` decodes to `"t "`.
pub fn spaced(ids: &[u32]) -> String {
    ids.iter().map(|t| format!("{t} ")).collect()
}
