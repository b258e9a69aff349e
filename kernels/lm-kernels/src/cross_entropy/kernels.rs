//! Fused cross-entropy kernels over `[rows, vocab]` logits (contiguous), `[rows]` targets.

use cubecl::prelude::*;

/// Per row: the maximum `m` and `s = Σ exp(x − m)` (into `stats [2, rows]`) and
/// `loss = m + ln s − logits[target]`, in
/// f32 (the backward uses `exp(x − m) / s`, which stays accurate for huge logits where
/// `exp(x − lse)` would not: `lse` itself rounds to the logits' ulp). Each unit
/// keeps an online (max, sum of exp) pair over a strided slice of the row; the cube then
/// merges the pairs in shared memory. One read of the logits, nothing else written.
#[cube(launch)]
pub fn cross_entropy_forward<F: Float, I: Numeric>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    loss: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    rows: u32,
    vocab_len: u32,
    #[comptime] units: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    // One cube per row (the launch may add a few idle cubes to fill its grid).
    let row = CUBE_POS;
    if row < rows as usize {
        let vocab = vocab_len as usize;
        let base = row * vocab;
        let unit = UNIT_POS_X as usize;
        let mut m = f32::new(-1.0e30);
        let mut s = 0.0f32;
        let mut v = unit;
        while v < vocab {
            let x = f32::cast_from(logits[base + v]);
            if x > m {
                s = s * f32::exp(m - x) + 1.0;
                m = x;
            } else {
                s += f32::exp(x - m);
            }
            v += units;
        }
        let mut maxes = SharedMemory::<f32>::new(units);
        let mut sums = SharedMemory::<f32>::new(units);
        maxes[unit] = m;
        sums[unit] = s;
        sync_cube();
        // A runtime value (the cube width): a comptime one cannot be halved in a loop.
        let mut stride = CUBE_DIM_X as usize / 2;
        while stride > 0 {
            if unit < stride {
                let (m1, m2) = (maxes[unit], maxes[unit + stride]);
                let top = max(m1, m2);
                sums[unit] =
                    sums[unit] * f32::exp(m1 - top) + sums[unit + stride] * f32::exp(m2 - top);
                maxes[unit] = top;
            }
            sync_cube();
            stride /= 2;
        }
        if unit == 0 {
            let target = u32::cast_from(targets[row]) as usize;
            stats[row] = maxes[0];
            stats[rows as usize + row] = sums[0];
            let shifted = f32::cast_from(logits[base + target]) - maxes[0];
            loss[row] = f32::ln(sums[0]) - shifted;
        }
    }
}

/// `d_logits = (softmax(logits) − onehot(target)) · d_loss[row]`, one element per unit.
#[cube(launch)]
pub fn cross_entropy_backward<F: Float, I: Numeric>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    stats: &Tensor<f32>,
    d_loss: &Tensor<f32>,
    d_logits: &mut Tensor<F>,
    rows: u32,
    vocab_len: u32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let idx = ABSOLUTE_POS;
    if idx < d_logits.len() {
        let vocab = vocab_len as usize;
        let row = idx / vocab;
        let p = f32::exp(f32::cast_from(logits[idx]) - stats[row]) / stats[rows as usize + row];
        let is_target = u32::cast_from(targets[row]) as usize == idx % vocab;
        let grad = select(is_target, p - 1.0, p);
        d_logits[idx] = F::cast_from(grad * d_loss[row]);
    }
}
