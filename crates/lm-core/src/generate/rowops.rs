//! Whole-row reductions for the CPU sampler's hot loops: max, softmax weights, sums.
//!
//! `f32::exp` is a libm call per element, and an f64 running sum or a running max is one
//! long dependency chain the compiler may not reorder; over 150k logits × 256 rows per
//! step all three show. Here the exponential is a branch-free polynomial the compiler
//! vectorises, and reductions run in eight independent lanes (about 2-5× faster).

/// Lanes of the partial sums: independent chains the compiler can vectorise.
const LANES: usize = 8;

/// `exp(x)` for `x <= 0` (the logits minus their max), within about 2 ulp of the exact
/// value; NaN and anything below -87 (where f32 runs out of normal numbers) give 0.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Cephes' expf: x = k ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial.
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 0.0);
    let k = (clamped * LOG2E + ROUND) - ROUND;
    let r = clamped - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^k built in the exponent field: k + 127 lands in the low mantissa bits of
    // 2^23 + k + 127, and the shift moves it up (no float-to-int cast, which does not
    // vectorise on baseline x86-64).
    let scale = f32::from_bits((k + 8_388_735.0).to_bits() << 23);
    // `!(x >= -87)` is also true for NaN.
    if x >= -87.0 { e * scale } else { 0.0 }
}

/// The largest value, ignoring NaN; `-inf` when there is none.
pub fn max_f32(values: &[f32]) -> f32 {
    // `if v > a { v } else { a }` is exactly x86's maxps, NaN `v` keeping `a`.
    let pick = |a: f32, v: f32| if v > a { v } else { a };
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| pick(a, v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = pick(*a, v);
        }
    }
    acc.iter().fold(rest, |a, &v| pick(a, v))
}

/// Sums `values` in f64, eight lanes at a time.
pub fn sum_f64(values: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// The sum in f64 of the values `>= t`, eight lanes at a time.
pub fn sum_at_least(values: &[f32], t: f32) -> f64 {
    let keep = |v: f32| if v >= t { v as f64 } else { 0.0 };
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().map(|&v| keep(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += keep(v);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// `out[i] = exp((logits[i] - max) * inv_t)` (0 for NaN), returning their sum in f64.
pub fn softmax_weights(out: &mut Vec<f32>, logits: &[f32], max: f32, inv_t: f32) -> f64 {
    out.clear();
    out.extend(logits.iter().map(|&x| exp_nonpositive((x - max) * inv_t)));
    sum_f64(out)
}

/// `sum exp(logits[i] - max)` in f64 without storing the terms (NaN terms are 0). Blocks
/// go through a stack buffer: exponentials and sums each vectorise, fused they do not.
pub fn sum_exp(logits: &[f32], max: f32) -> f64 {
    let mut buf = [0.0f32; 256];
    let mut total = 0.0f64;
    for block in logits.chunks(buf.len()) {
        let terms = &mut buf[..block.len()];
        for (t, &x) in terms.iter_mut().zip(block) {
            *t = exp_nonpositive(x - max);
        }
        total += sum_f64(terms);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "relative error {worst}");
    }

    #[test]
    fn max_ignores_nan() {
        let mut v: Vec<f32> = (0..37).map(|i| (i % 11) as f32).collect();
        v[3] = f32::NAN;
        v[20] = 12.5;
        assert_eq!(max_f32(&v), 12.5);
        assert_eq!(max_f32(&[f32::NAN; 9]), f32::NEG_INFINITY);
        assert_eq!(max_f32(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn edge_inputs() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NAN), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert!(exp_nonpositive(-86.9) > 0.0);
    }

    #[test]
    fn sums_agree_with_a_plain_loop() {
        let logits: Vec<f32> = (0..1001).map(|i| ((i * 37) % 101) as f32 * -0.05).collect();
        let want: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
        assert!((sum_exp(&logits, 0.0) / want - 1.0).abs() < 1e-6);
        let mut w = Vec::new();
        let total = softmax_weights(&mut w, &logits, 0.0, 0.5);
        let want: f64 = logits.iter().map(|&x| (x as f64 * 0.5).exp()).sum();
        assert!((total / want - 1.0).abs() < 1e-6);
        assert_eq!(w.len(), logits.len());
        let want: f64 = w.iter().filter(|&&v| v >= 0.3).map(|&v| v as f64).sum();
        assert!((sum_at_least(&w, 0.3) / want - 1.0).abs() < 1e-12);
    }
}
