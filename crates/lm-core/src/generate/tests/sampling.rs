//! Statistical checks of `sample_token` against the distributions it should draw from.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let e: Vec<f64> = logits.iter().map(|&x| ((x as f64 - m) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Pearson's chi-square of `draws` against `probs` (bins with probability 0 must stay empty).
fn chi_square(counts: &[usize], probs: &[f64], draws: usize) -> f64 {
    counts
        .iter()
        .zip(probs)
        .map(|(&c, &p)| {
            if p == 0.0 {
                assert_eq!(c, 0, "drew a token of probability 0");
                0.0
            } else {
                let e = p * draws as f64;
                (c as f64 - e).powi(2) / e
            }
        })
        .sum()
}

fn counts(logits: &[f32], params: &SamplingParams, draws: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut scratch = Scratch::default();
    let mut counts = vec![0; logits.len()];
    for _ in 0..draws {
        let t = sample_token(logits, params, &mut rng, &mut scratch)
            .expect("a token")
            .token;
        counts[t as usize] += 1;
    }
    counts
}

#[test]
fn temperature_sampling_matches_softmax_of_scaled_logits() {
    let logits = [1.0f32, 0.5, 0.0, -1.0, 2.0];
    for t in [0.7f32, 1.0, 2.5] {
        let params = SamplingParams {
            temperature: t,
            ..SamplingParams::default()
        };
        let n = 40_000;
        let chi = chi_square(
            &counts(&logits, &params, n, 11),
            &softmax(&logits, t as f64),
            n,
        );
        // 4 degrees of freedom: P(chi2 > 18.47) = 0.001.
        assert!(chi < 18.47, "temperature {t}: chi-square {chi}");
    }
}

#[test]
fn top_k_draws_from_the_renormalised_top_k() {
    let logits = [1.0f32, 0.5, 0.0, -1.0, 2.0];
    let params = SamplingParams {
        temperature: 0.9,
        top_k: Some(3),
        ..SamplingParams::default()
    };
    let mut probs = softmax(&logits, 0.9);
    probs[2] = 0.0;
    probs[3] = 0.0;
    let s: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= s);
    let n = 30_000;
    let chi = chi_square(&counts(&logits, &params, n, 5), &probs, n);
    // 2 degrees of freedom: P(chi2 > 13.82) = 0.001.
    assert!(chi < 13.82, "chi-square {chi}");
}

/// The nucleus by the definition: sort everything, keep the shortest prefix reaching `p`.
fn reference_nucleus(probs: &[f64], p: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let mut acc = 0.0;
    let mut keep = Vec::new();
    for i in order {
        keep.push(i);
        acc += probs[i];
        if acc >= p - 1e-9 {
            break;
        }
    }
    keep
}

#[test]
fn top_p_on_a_large_vocab_draws_the_nucleus_with_renormalised_probabilities() {
    // A peaked distribution over 5000 tokens whose nucleus holds a few dozen tokens.
    let logits: Vec<f32> = Logits::Hash
        .of(&[1, 2, 3], 5000)
        .iter()
        .map(|x| x * x * 1.2)
        .collect();
    for (t, top_p) in [(1.0f32, 0.5f32), (0.8, 0.9)] {
        let probs = softmax(&logits, t as f64);
        let nucleus = reference_nucleus(&probs, top_p as f64);
        assert!(
            nucleus.len() > 3 && nucleus.len() < 400,
            "{}",
            nucleus.len()
        );
        let mut expect = vec![0.0; logits.len()];
        let mass: f64 = nucleus.iter().map(|&i| probs[i]).sum();
        nucleus.iter().for_each(|&i| expect[i] = probs[i] / mass);
        let params = SamplingParams {
            temperature: t,
            top_p,
            ..SamplingParams::default()
        };
        let n = 60_000;
        let got = counts(&logits, &params, n, 3);
        // Pool bins with tiny expectations so chi-square stays valid.
        let (mut c, mut e) = (Vec::new(), Vec::new());
        let (mut pooled_c, mut pooled_e) = (0, 0.0);
        for i in 0..logits.len() {
            if expect[i] * n as f64 >= 20.0 {
                c.push(got[i]);
                e.push(expect[i]);
            } else {
                assert!(
                    expect[i] > 0.0 || got[i] == 0,
                    "token {i} outside the nucleus"
                );
                pooled_c += got[i];
                pooled_e += expect[i];
            }
        }
        c.push(pooled_c);
        e.push(pooled_e);
        let chi = chi_square(&c, &e, n);
        // Generous bound for up to ~400 degrees of freedom (mean df, sd sqrt(2 df)).
        let df = (c.len() - 1) as f64;
        assert!(
            chi < df + 6.0 * (2.0 * df).sqrt(),
            "top_p {top_p}: chi {chi}, df {df}"
        );
    }
}

#[test]
fn greedy_ignores_the_rng_and_takes_the_first_maximum() {
    let logits = [0.0f32, 3.0, 3.0, 1.0];
    let params = SamplingParams::greedy(1);
    assert_eq!(counts(&logits, &params, 100, 1), vec![0, 100, 0, 0]);
}
