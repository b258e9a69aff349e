//! A character codec and a scripted fake `CausalLm` for the rollout and eval tests.

use burn::tensor::{Tensor, TensorData};
use lm_align::policy::TextCodec;
use lm_core::Result;
use lm_core::backends::NdArray as B;
use lm_core::generate::CausalLm;

pub const EOS: u32 = 128;
/// One token that decodes to several characters, past the stop string.
pub const ANSWER_NL: u32 = 129;
pub const VOCAB: usize = 130;

/// ASCII characters are their own ids; 128 is EOS, 129 is `"</answer>\n"`.
pub struct Chars;

impl TextCodec for Chars {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        assert!(text.is_ascii(), "test text must be ASCII");
        Ok(text.bytes().map(u32::from).collect())
    }
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| match i {
                EOS => String::new(),
                ANSWER_NL => "</answer>\n".into(),
                i => char::from(i as u8).to_string(),
            })
            .collect()
    }
    fn stop_token_ids(&self) -> Vec<u32> {
        vec![EOS]
    }
    fn pad_id(&self) -> u32 {
        EOS
    }
    fn vocab_size(&self) -> usize {
        VOCAB
    }
}

pub fn ids(text: &str) -> Vec<u32> {
    Chars.encode(text).unwrap()
}

/// A fake LM whose cache rows are token histories. `Script`: after a known prompt it
/// strongly favours the next token of that prompt's response, then EOS. `Noise`:
/// pseudo-random logits that depend on the whole history, so sampling depends on the seed.
pub enum Fake {
    Script(Vec<(Vec<u32>, Vec<u32>)>),
    Noise,
}

impl Fake {
    fn logits(&self, history: &[u32]) -> Vec<f32> {
        match self {
            Fake::Noise => {
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                for &t in history {
                    h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
                }
                (0..VOCAB as u64)
                    .map(|j| {
                        let x = (h ^ j.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        ((x ^ (x >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 3.0
                    })
                    .collect()
            }
            Fake::Script(scripts) => {
                let next = scripts
                    .iter()
                    .find(|(p, _)| history.starts_with(p))
                    .and_then(|(p, r)| {
                        let done = &history[p.len()..];
                        r.starts_with(done).then(|| r.get(done.len())).flatten()
                    })
                    .copied()
                    .unwrap_or(EOS);
                (0..VOCAB as u32)
                    .map(|j| if j == next { 12.0 } else { 0.0 })
                    .collect()
            }
        }
    }

    fn batch(&self, histories: Vec<&Vec<u32>>) -> Tensor<B, 2> {
        let rows = histories.len();
        let data: Vec<f32> = histories.into_iter().flat_map(|h| self.logits(h)).collect();
        Tensor::from_data(TensorData::new(data, [rows, VOCAB]), &Default::default())
    }
}

impl CausalLm<B> for Fake {
    type Cache = Vec<Vec<u32>>;
    fn vocab_size(&self) -> usize {
        VOCAB
    }
    fn max_positions(&self) -> usize {
        512
    }
    fn new_cache(&self, rows: usize, _max_len: usize) -> Self::Cache {
        vec![Vec::new(); rows]
    }
    fn prefill(&self, cache: &mut Self::Cache, rows: &[usize], prompts: &[&[u32]]) -> Tensor<B, 2> {
        for (&r, p) in rows.iter().zip(prompts) {
            cache[r] = p.to_vec();
        }
        self.batch(rows.iter().map(|&r| &cache[r]).collect())
    }
    fn decode(&self, cache: &mut Self::Cache, rows: &[usize], tokens: &[u32]) -> Tensor<B, 2> {
        for (&r, &t) in rows.iter().zip(tokens) {
            cache[r].push(t);
        }
        self.batch(rows.iter().map(|&r| &cache[r]).collect())
    }
}
