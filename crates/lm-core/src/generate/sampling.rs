//! Drawing one token from one row of logits, on the CPU.
//!
//! Order (vLLM's): temperature, then top-k, then top-p over the renormalised top-k
//! probabilities, then one uniform draw from the request's RNG. NaN logits count as
//! `-inf`. Nothing here sorts the whole vocabulary: top-k is a quickselect, and the top-p
//! nucleus is found by quickselect on probability mass (expected O(V)), after one pass
//! that usually shrinks the candidates to a few hundred.

use rand::Rng;

use super::params::SamplingParams;
use super::rowops::{exp_nonpositive, max_f32, softmax_weights, sum_at_least, sum_exp, sum_f64};
use super::select::{
    keep_nucleus, nucleus_floors, nucleus_target, select_nucleus, top_k_candidates,
};

/// Buffers reused across steps so sampling a row does not allocate.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    /// `(value, token)` candidates for top-k/top-p.
    cands: Vec<(f32, u32)>,
    /// Unnormalised probabilities of the whole vocabulary.
    weights: Vec<f32>,
}

/// One draw: the token and, when the draw computed it as a by-product (temperature 1 over
/// the whole vocabulary), `log sum exp(logits)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub token: u32,
    pub log_z: Option<f64>,
}

impl Draw {
    /// `log_softmax(logits)[token]` at temperature 1, reusing `log_z` when the draw has it.
    pub fn logprob(&self, logits: &[f32]) -> f32 {
        match self.log_z {
            Some(z) => (logits[self.token as usize] as f64 - z) as f32,
            None => log_softmax_at(logits, self.token),
        }
    }
}

/// The first index of the largest logit, ignoring NaN; `None` when every logit is NaN.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let m = max_f32(logits);
    // With only `-inf` and NaN, `m` is `-inf`: the first `-inf`, if any.
    logits.iter().position(|&x| x == m).map(|i| i as u32)
}

/// `log_softmax(logits)[token]` at temperature 1, before any top-k/top-p: the policy's
/// log-probability. The max is subtracted before exponentiating and the sum runs in f64,
/// so it is stable for any logit scale.
pub fn log_softmax_at(logits: &[f32], token: u32) -> f32 {
    let m = max_f32(logits);
    if m == f32::INFINITY {
        return if logits.get(token as usize) == Some(&m) {
            0.0
        } else {
            f32::NEG_INFINITY
        };
    }
    let x = logits.get(token as usize).copied().unwrap_or(f32::NAN) as f64;
    (x - m as f64 - sum_exp(logits, m).ln()) as f32
}

/// Draws the next token for one row; `None` when the logits hold no finite maximum (all
/// NaN or `-inf`), so no distribution exists.
pub fn sample_token<R: Rng + ?Sized>(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut R,
    scratch: &mut Scratch,
) -> Option<Draw> {
    let best = argmax(logits)?;
    let m = logits[best as usize];
    if m == f32::NEG_INFINITY {
        return None;
    }
    // An infinite maximum leaves only the infinite tokens possible: take the first.
    if params.is_greedy() || m == f32::INFINITY {
        return Some(Draw {
            token: best,
            log_z: None,
        });
    }
    let inv_t = 1.0 / params.temperature;
    let Scratch { cands, weights } = scratch;
    let top_p = params.top_p as f64;
    match params.top_k.filter(|&k| k < logits.len()) {
        None => {
            let total = softmax_weights(weights, logits, m, inv_t);
            if top_p >= 1.0 {
                let u = rng.random::<f64>() * total;
                let token = draw_weights(weights, u);
                let log_z = (params.temperature == 1.0).then(|| m as f64 + total.ln());
                return Some(Draw { token, log_z });
            }
            let target = nucleus_target(top_p, total);
            let floor = nucleus_floors(top_p, total, weights.len())
                .into_iter()
                .find(|&t| sum_at_least(weights, t) >= target)
                .unwrap_or(0.0);
            cands.clear();
            let indexed = weights.iter().enumerate().map(|(i, &w)| (w, i as u32));
            cands.extend(indexed.filter(|c| c.0 >= floor));
            select_nucleus(cands, nucleus_target(top_p, total));
        }
        Some(k) => {
            top_k_candidates(logits, k, cands, weights);
            for c in cands.iter_mut() {
                c.0 = exp_nonpositive((c.0 - m) * inv_t);
            }
            if top_p < 1.0 {
                keep_nucleus(cands, top_p);
            }
        }
    }
    let total: f64 = cands.iter().map(|c| c.0 as f64).sum();
    let u = rng.random::<f64>() * total;
    Some(Draw {
        token: draw(cands.iter().copied(), u),
        log_z: None,
    })
}

/// The token where the running weight first exceeds `u` (`u` in `[0, total)`); rounding
/// that overshoots the end falls back to the last token with weight.
fn draw(weights: impl Iterator<Item = (f32, u32)>, u: f64) -> u32 {
    let mut acc = 0.0f64;
    let mut last = None;
    for (w, i) in weights {
        if w > 0.0 {
            acc += w as f64;
            last = Some(i);
            if u < acc {
                return i;
            }
        }
    }
    last.unwrap_or(0)
}

/// [`draw`] over a whole-vocabulary weight row: whole blocks are skipped by their (fast)
/// sums, and only the block holding `u` is walked token by token.
fn draw_weights(weights: &[f32], u: f64) -> u32 {
    const BLOCK: usize = 256;
    let mut acc = 0.0f64;
    for (b, block) in weights.chunks(BLOCK).enumerate() {
        let mass = sum_f64(block);
        if u < acc + mass {
            let mut a = acc;
            for (j, &w) in block.iter().enumerate() {
                a += w as f64;
                if w > 0.0 && u < a {
                    return (b * BLOCK + j) as u32;
                }
            }
        }
        acc += mass;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn params(temperature: f32, top_k: Option<usize>, top_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), Some(1));
        assert_eq!(argmax(&[f32::NAN]), None);
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY]), Some(1));
    }

    #[test]
    fn log_softmax_is_stable_and_normalised() {
        let logits = [1000.0f32, 999.0, 998.0];
        let lp: Vec<f32> = (0..3).map(|t| log_softmax_at(&logits, t)).collect();
        let mass: f32 = lp.iter().map(|l| l.exp()).sum();
        assert!((mass - 1.0).abs() < 1e-6, "{lp:?}");
        assert!((lp[0] - lp[1] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn degenerate_logits_give_none_or_the_infinite_token() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut s = Scratch::default();
        let p = params(1.0, None, 1.0);
        assert_eq!(
            sample_token(&[f32::NEG_INFINITY; 3], &p, &mut rng, &mut s),
            None
        );
        assert_eq!(sample_token(&[f32::NAN; 3], &p, &mut rng, &mut s), None);
        let inf = [0.0, f32::INFINITY, 1.0];
        assert_eq!(
            sample_token(&inf, &p, &mut rng, &mut s).map(|d| d.token),
            Some(1)
        );
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut s = Scratch::default();
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 50) as f32 * 0.1).collect();
        let best = argmax(&logits);
        for p in [params(1.5, Some(1), 1.0), params(1.0, None, 1e-6)] {
            for _ in 0..50 {
                let d = sample_token(&logits, &p, &mut rng, &mut s);
                assert_eq!(d.map(|d| d.token), best);
            }
        }
    }
}
