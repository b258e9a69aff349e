//! Sampling from a trained model: temperature, nucleus (top-p), stop at end-of-text.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use lm_core::TransformerLm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = all).
    pub top_p: f64,
    /// Stop after emitting this id (the end-of-text token).
    pub stop: Option<u32>,
}

/// Picks the next id from `logits` under the options.
pub fn sample_next(logits: &[f32], opts: &SampleOptions, rng: &mut impl Rng) -> u32 {
    if opts.temperature <= 0.0 {
        return logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or(0);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l as f64 - max) / opts.temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        kept += 1;
        mass += p.1;
        if mass >= opts.top_p {
            break;
        }
    }
    let mut r = rng.random::<f64>() * mass;
    for p in &probs[..kept] {
        r -= p.1;
        if r <= 0.0 {
            return p.0;
        }
    }
    probs[kept - 1].0
}

/// Continues `prompt` by up to `max_tokens` ids (the last `context_length` tokens are fed each
/// step). Returns only the new ids, including the stop token if it was produced.
pub fn generate<B: Backend>(
    model: &TransformerLm<B>,
    prompt: &[u32],
    opts: &SampleOptions,
    rng: &mut impl Rng,
    device: &B::Device,
) -> Vec<u32> {
    let prompts = [prompt.to_vec()];
    generate_with_rngs(model, &prompts, opts, std::slice::from_mut(rng), device)
        .pop()
        .expect("one prompt, one continuation")
}

/// Continues every prompt, batched: each step runs one forward pass per distinct window
/// length among the unfinished sequences (prompts of one length run together from the
/// start; all do once their windows reach `context_length`), so no padding is needed and
/// each continuation is what [`generate`] gives it alone. Sequence `i` samples from its own
/// stream seeded with `seed + i`, so results do not depend on the batching.
pub fn generate_batch<B: Backend>(
    model: &TransformerLm<B>,
    prompts: &[Vec<u32>],
    opts: &SampleOptions,
    seed: u64,
    device: &B::Device,
) -> Vec<Vec<u32>> {
    let mut rngs: Vec<ChaCha8Rng> = (0..prompts.len() as u64)
        .map(|i| ChaCha8Rng::seed_from_u64(seed.wrapping_add(i)))
        .collect();
    generate_with_rngs(model, prompts, opts, &mut rngs, device)
}

fn generate_with_rngs<B: Backend, R: Rng>(
    model: &TransformerLm<B>,
    prompts: &[Vec<u32>],
    opts: &SampleOptions,
    rngs: &mut [R],
    device: &B::Device,
) -> Vec<Vec<u32>> {
    let mut ids: Vec<Vec<u32>> = prompts.to_vec();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut active: Vec<usize> = (0..prompts.len()).filter(|&i| !ids[i].is_empty()).collect();
    for _ in 0..opts.max_tokens {
        if active.is_empty() {
            break;
        }
        let windows: Vec<(usize, usize)> = active
            .iter()
            .map(|&i| (i, ids[i].len().min(model.context_length)))
            .collect();
        let mut lengths: Vec<usize> = windows.iter().map(|w| w.1).collect();
        lengths.sort_unstable();
        lengths.dedup();
        for len in lengths {
            let group: Vec<usize> = windows.iter().filter(|w| w.1 == len).map(|w| w.0).collect();
            let input: Vec<i64> = group
                .iter()
                .flat_map(|&i| ids[i][ids[i].len() - len..].iter().map(|&t| t as i64))
                .collect();
            let x =
                Tensor::<B, 2, Int>::from_data(TensorData::new(input, [group.len(), len]), device);
            let logits = model.forward(x);
            let [rows, _, vocab] = logits.dims();
            let last: Vec<f32> = logits
                .slice([0..rows, len - 1..len, 0..vocab])
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32");
            for (row, &i) in group.iter().enumerate() {
                let next = sample_next(&last[row * vocab..(row + 1) * vocab], opts, &mut rngs[i]);
                ids[i].push(next);
                out[i].push(next);
            }
        }
        active.retain(|&i| opts.stop.is_none() || out[i].last().copied() != opts.stop);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_p_and_temperature() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let logits = [0.0f32, 5.0, 1.0, 4.9];
        let greedy = SampleOptions {
            max_tokens: 1,
            temperature: 0.0,
            top_p: 1.0,
            stop: None,
        };
        assert_eq!(sample_next(&logits, &greedy, &mut rng), 1);
        // top_p tiny: only the most likely token survives.
        let nucleus = SampleOptions {
            temperature: 1.0,
            top_p: 1e-6,
            ..greedy.clone()
        };
        assert!((0..50).all(|_| sample_next(&logits, &nucleus, &mut rng) == 1));
        // top_p 0.9 keeps tokens 1 and 3 (≈ 0.51 + 0.46), never 0 or 2.
        let top = SampleOptions {
            temperature: 1.0,
            top_p: 0.9,
            ..greedy.clone()
        };
        let draws: Vec<u32> = (0..400)
            .map(|_| sample_next(&logits, &top, &mut rng))
            .collect();
        assert!(draws.iter().all(|&d| d == 1 || d == 3));
        assert!(draws.contains(&1) && draws.contains(&3));
        // High temperature flattens: all four appear.
        let hot = SampleOptions {
            temperature: 100.0,
            top_p: 1.0,
            ..greedy
        };
        let draws: Vec<u32> = (0..400)
            .map(|_| sample_next(&logits, &hot, &mut rng))
            .collect();
        assert!((0..4).all(|i| draws.contains(&i)));
    }

    /// Batched generation gives each prompt exactly what generating it alone gives (prompts
    /// of different lengths, sampling and greedy), and stops a sequence at the stop token.
    #[test]
    fn batched_generation_equals_one_prompt_at_a_time() {
        use lm_core::backends::NdArray;
        let cfg = lm_core::TransformerConfig::new(40, 8, 16, 2, 2, 32);
        let device = Default::default();
        let model = TransformerLm::<NdArray>::new(&cfg, 1, &device).unwrap();
        let prompts = vec![
            vec![1, 2, 3],
            vec![4],
            vec![5, 6, 7],
            vec![8, 9, 10, 11, 12, 13, 14],
        ];
        for temperature in [0.0, 1.0] {
            let opts = SampleOptions {
                max_tokens: 12,
                temperature,
                top_p: 0.9,
                stop: None,
            };
            let batched = generate_batch(&model, &prompts, &opts, 7, &device);
            for (i, prompt) in prompts.iter().enumerate() {
                let mut rng = ChaCha8Rng::seed_from_u64(7 + i as u64);
                let alone = generate(&model, prompt, &opts, &mut rng, &device);
                assert_eq!(batched[i], alone, "prompt {i}, temperature {temperature}");
                assert_eq!(alone.len(), 12);
            }
        }
        // The stop token ends a sequence (including it) and leaves the others running.
        let greedy = SampleOptions {
            max_tokens: 12,
            temperature: 0.0,
            top_p: 1.0,
            stop: None,
        };
        let free = generate_batch(&model, &prompts, &greedy, 0, &device);
        let stop = free[0][2];
        let stopped = generate_batch(
            &model,
            &prompts,
            &SampleOptions {
                stop: Some(stop),
                ..greedy
            },
            0,
            &device,
        );
        let first = free[0].iter().position(|&t| t == stop).unwrap();
        assert_eq!(stopped[0], free[0][..=first].to_vec());
        for (s, f) in stopped.iter().zip(&free) {
            let end = f.iter().position(|&t| t == stop).map_or(f.len(), |p| p + 1);
            assert_eq!(s, &f[..end].to_vec());
        }
    }
}
