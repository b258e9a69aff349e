//! The decoder as a [`CausalLm`]: batched prefill into cache rows, one-token decode steps
//! over rows of different lengths.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::attention::SlotMask;
use super::decoder::Decoder;
use super::kv_cache::{CacheWrite, KvCache};
use crate::generate::CausalLm;

fn int_tensor<B: Backend>(
    values: Vec<i64>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Logits rows `[n, V]` at flat positions `index` of `h [rows, T, d]`.
fn rows_logits<B: Backend>(model: &Decoder<B>, h: Tensor<B, 3>, index: Vec<i64>) -> Tensor<B, 2> {
    let [rows, t, d] = h.dims();
    let n = index.len();
    let flat: Tensor<B, 2> = h.reshape([rows * t, d]);
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [n]), &flat.device());
    let picked = flat.select(0, idx).reshape([n, 1, d]);
    model.logits(picked).reshape([n, model.config.vocab_size])
}

impl<B: Backend> CausalLm<B> for Decoder<B> {
    type Cache = KvCache<B>;

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.rope.max_seq_len
    }

    fn new_cache(&self, rows: usize, max_len: usize) -> KvCache<B> {
        let device = self.embed_tokens.weight.device();
        self.empty_cache(rows, max_len.min(self.max_positions()), &device)
    }

    /// Right-pads the prompts into one batch, runs it through a scratch cache and copies
    /// each prompt's keys/values into its row.
    fn prefill(&self, cache: &mut KvCache<B>, rows: &[usize], prompts: &[&[u32]]) -> Tensor<B, 2> {
        let device = self.embed_tokens.weight.device();
        let n = prompts.len();
        let t = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        assert!(
            rows.len() == n && t > 0 && t <= cache.max_len,
            "prefill: {n} prompts for {} rows, longest {t} tokens, cache rows hold {}",
            rows.len(),
            cache.max_len
        );
        let mut ids = vec![0i64; n * t];
        let mut key_ok = vec![false; n * t];
        for (i, p) in prompts.iter().enumerate() {
            for (j, &tok) in p.iter().enumerate() {
                ids[i * t + j] = tok as i64;
                key_ok[i * t + j] = true;
            }
        }
        let positions: Vec<i64> = (0..n).flat_map(|_| 0..t as i64).collect();
        let mask = SlotMask {
            offsets: vec![0; n],
            key_ok,
            len: t,
        };
        let mut scratch = self.empty_cache(n, t, &device);
        let h = self.hidden(
            int_tensor(ids, [n, t], &device),
            int_tensor(positions, [n, t], &device),
            &mask,
            Some((&mut scratch, &CacheWrite::At(0))),
        );
        // One copy per run of consecutive rows (all `t` slots: a shorter prompt's padding
        // lands past its length, where decode masks it and writes its next token).
        let mut i = 0;
        while i < n {
            let run = 1 + rows[i + 1..]
                .iter()
                .zip(rows[i..].iter())
                .take_while(|(next, prev)| **next == **prev + 1)
                .count();
            for (dst, src) in cache.layers.iter_mut().zip(&scratch.layers) {
                dst.copy_rows(rows[i], src, i, run, t);
            }
            i += run;
        }
        for (&row, p) in rows.iter().zip(prompts) {
            cache.lens[row] = p.len();
        }
        let last = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (i * t + p.len() - 1) as i64)
            .collect();
        rows_logits(self, h, last)
    }

    /// Runs every cache row (idle ones with a dummy token at their next slot, which nothing
    /// reads), advancing only `rows`; keys are cut to the longest row in use, rounded up to
    /// a bucket ([`KvCache::attend_len`]).
    fn decode(&self, cache: &mut KvCache<B>, rows: &[usize], tokens: &[u32]) -> Tensor<B, 2> {
        let device = self.embed_tokens.weight.device();
        let all = cache.rows();
        let mut ids = vec![0i64; all];
        for (&row, &tok) in rows.iter().zip(tokens) {
            assert!(
                cache.lens[row] < cache.max_len,
                "decode: cache row {row} is full ({} slots)",
                cache.max_len
            );
            ids[row] = tok as i64;
        }
        let positions: Vec<i64> = cache
            .lens
            .iter()
            .map(|&l| l.min(cache.max_len - 1) as i64)
            .collect();
        let attend = cache.attend_len(rows.iter().map(|&r| cache.lens[r] + 1).max().unwrap_or(1));
        let mut key_ok = vec![false; all * attend];
        for (r, &len) in cache.lens.iter().enumerate() {
            key_ok[r * attend..r * attend + len.min(attend)].fill(true);
        }
        let mask = SlotMask {
            offsets: cache.lens.iter().map(|&l| l.min(attend - 1)).collect(),
            key_ok,
            len: attend,
        };
        let write = CacheWrite::PerRow(cache.next_slots(&device));
        let h = self.hidden(
            int_tensor(ids, [all, 1], &device),
            int_tensor(positions, [all, 1], &device),
            &mask,
            Some((cache, &write)),
        );
        for &row in rows {
            cache.lens[row] += 1;
        }
        rows_logits(self, h, rows.iter().map(|&r| r as i64).collect())
    }
}
