//! Sampling from a trained model: temperature, nucleus (top-p), stop at end-of-text.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use lm_core::TransformerLm;
use rand::Rng;

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
    let mut ids: Vec<u32> = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..opts.max_tokens {
        let window = &ids[ids.len().saturating_sub(model.context_length)..];
        let input: Vec<i64> = window.iter().map(|&i| i as i64).collect();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(input, [1, window.len()]), device);
        let logits = model.forward(x);
        let [_, t, v] = logits.dims();
        let last: Vec<f32> = logits
            .slice([0..1, t - 1..t, 0..v])
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32");
        let next = sample_next(&last, opts, rng);
        ids.push(next);
        out.push(next);
        if Some(next) == opts.stop {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_top_p_and_temperature() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
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
}
