//! The engine's per-step token draw in one launch: per row of `[rows, vocab]` logits the
//! log-normaliser, the greedy token or an inverse-CDF sample, and the token's log-prob
//! (about 20 tensor ops for a greedy batch, 35 for a sampled one).

use cubecl::prelude::*;

use crate::reduce::cube_reduce;

/// Values per row of the draw's output: token, log-prob, finite flag.
pub const DRAW_OUT: usize = 3;

/// One cube of `units` units per row. `params [rows, 2]` holds `(1/temperature, u)` per row;
/// `u < 0` asks for the greedy token (the first index among equal maxima), else the first
/// token whose running weight `Σ exp((l − max) / temperature)` in token order exceeds
/// `u · total`. NaN logits count as −∞ (see [`MASKED`]). `out [rows, 3]` receives the
/// token, its log-prob at temperature 1 (`l[token] − log Σ exp l`) and 1 when that
/// normaliser is finite, else 0 (the engine's host sampler then decides).
#[cube(launch)]
pub fn draw_rows<F: Float>(
    logits: &Tensor<F>,
    params: &Tensor<f32>,
    out: &mut Tensor<f32>,
    vocab_len: u32,
    #[comptime] units: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS;
    let vocab = vocab_len as usize;
    let base = row * vocab;
    let unit = UNIT_POS_X as usize;
    let mut values = SharedMemory::<f32>::new(units);
    let mut indices = SharedMemory::<u32>::new(units);
    let mut found = SharedMemory::<u32>::new(1usize);

    // The maximum and its first index: strided, so the loads coalesce.
    let mut best = f32::new(MASKED);
    let mut best_at = vocab_len;
    let mut c = unit;
    while c < vocab {
        let v = logit_at(logits, base + c);
        if v > best {
            best = v;
            best_at = c as u32;
        }
        c += units;
    }
    values[unit] = best;
    indices[unit] = best_at;
    argmax_reduce(&mut values, &mut indices, unit);
    let max = values[0];
    let argmax = indices[0];
    sync_cube();

    // log Σ exp(l − max), at temperature 1.
    let mut sum = 0.0f32;
    let mut c = unit;
    while c < vocab {
        sum += f32::exp(logit_at(logits, base + c) - max);
        c += units;
    }
    values[unit] = sum;
    cube_reduce(&mut values, unit, false);
    let log_z = max + f32::ln(values[0]);
    sync_cube();

    let inv_t = params[row * 2];
    let uniform = params[row * 2 + 1];
    let mut token = argmax;
    if uniform >= 0.0 {
        // Each unit weighs one contiguous chunk; unit 0 turns the chunk sums into running
        // sums; the unit whose chunk holds the target walks it token by token.
        let chunk = vocab.div_ceil(units);
        let start = min(unit * chunk, vocab);
        let end = min(start + chunk, vocab);
        let mut weight = 0.0f32;
        let mut c = start;
        while c < end {
            weight += weight_at(logits, base + c, max, inv_t);
            c += 1;
        }
        values[unit] = weight;
        if unit == 0 {
            // Past the total (rounding): the last token, as the tensor-op draw does.
            found[0] = vocab_len - 1;
        }
        sync_cube();
        if unit == 0 {
            let mut running = 0.0f32;
            let mut i = 0usize;
            while i < units {
                running += values[i];
                values[i] = running;
                i += 1;
            }
        }
        sync_cube();
        let target = uniform * values[comptime!(units - 1)];
        let mut before = 0.0f32;
        if unit > 0 {
            before = values[unit - 1];
        }
        if before <= target && target < values[unit] {
            let mut running = before;
            let mut pick = end - 1;
            let mut c = start;
            while c < end {
                running += weight_at(logits, base + c, max, inv_t);
                if running > target {
                    pick = c;
                    c = end;
                } else {
                    c += 1;
                }
            }
            found[0] = pick as u32;
        }
        sync_cube();
        token = found[0];
    }
    if unit == 0 {
        // No logit above the mask value: no distribution (all −∞ or NaN); a +∞ logit
        // makes the sum NaN.
        let finite = max > MASKED && !f32::is_nan(log_z) && !f32::is_inf(log_z);
        let at = min(token, vocab_len - 1) as usize;
        out[row * 3] = f32::cast_from(at as u32);
        out[row * 3 + 1] = logit_at(logits, base + at) - log_z;
        out[row * 3 + 2] = select(finite, 1.0f32, 0.0f32);
    }
}

/// Stands for −∞: NaN and −∞ logits become this finite value (no infinity literal in the
/// shaders, and none enters the max) and weigh exp(MASKED − max) = 0.
const MASKED: f32 = -1.0e38;

/// Logit `at` in f32, with NaN and anything below [`MASKED`] as [`MASKED`].
#[cube]
fn logit_at<F: Float>(logits: &Tensor<F>, at: usize) -> f32 {
    let v = f32::cast_from(logits[at]);
    select(f32::is_nan(v), f32::new(MASKED), max(v, f32::new(MASKED)))
}

/// The sampling weight `exp((l − max) / temperature)` of logit `at`: the chunk sums and the
/// walk through the chosen chunk compute it alike.
#[cube]
fn weight_at<F: Float>(logits: &Tensor<F>, at: usize, max: f32, inv_t: f32) -> f32 {
    f32::exp((logit_at(logits, at) - max) * inv_t)
}

/// The largest of `values[0..CUBE_DIM_X]` and, among equal maxima, the smallest index, into
/// slot 0.
#[cube]
fn argmax_reduce(values: &mut SharedMemory<f32>, indices: &mut SharedMemory<u32>, unit: usize) {
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if unit < stride {
            let (v, i) = (values[unit + stride], indices[unit + stride]);
            if v > values[unit] || (v == values[unit] && i < indices[unit]) {
                values[unit] = v;
                indices[unit] = i;
            }
        }
        sync_cube();
        stride /= 2;
    }
}
