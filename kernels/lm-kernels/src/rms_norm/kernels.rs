//! RMSNorm kernels over contiguous `[rows, dim]` activations, all arithmetic in f32.

use cubecl::prelude::*;

use crate::reduce::cube_reduce;

/// Per row (one cube): `inv = 1/√(mean(x²) + eps)` into `inv_rms[row]`, and
/// `y = x · inv · weight`.
#[cube(launch)]
pub fn rms_norm_forward<F: Float, W: Float>(
    x: &Tensor<F>,
    weight: &Tensor<W>,
    y: &mut Tensor<F>,
    inv_rms: &mut Tensor<f32>,
    rows: u32,
    dim_len: u32,
    eps: f32,
    #[comptime] units: usize,
    #[define(F, W)] _dtypes: [StorageType; 2],
) {
    let row = CUBE_POS;
    if row < rows as usize {
        let dim = dim_len as usize;
        let base = row * dim;
        let unit = UNIT_POS_X as usize;
        let mut sum_sq = 0.0f32;
        let mut c = unit;
        while c < dim {
            let v = f32::cast_from(x[base + c]);
            sum_sq += v * v;
            c += units;
        }
        let inv = row_inv_rms(sum_sq, unit, dim_len, eps, units);
        if unit == 0 {
            inv_rms[row] = inv;
        }
        write_normed(x, weight, y, base, dim, inv, unit, units);
    }
}

/// `1/√(mean(v²) + eps)` of a row from each unit's part of `Σ v²` (one cube per row).
#[cube]
fn row_inv_rms(sum_sq: f32, unit: usize, dim_len: u32, eps: f32, #[comptime] units: usize) -> f32 {
    let mut sums = SharedMemory::<f32>::new(units);
    sums[unit] = sum_sq;
    cube_reduce(&mut sums, unit, false);
    1.0f32 / f32::sqrt(sums[0] / f32::cast_from(dim_len) + eps)
}

/// `y = src · inv · weight` over the row at `base`, at this unit's columns.
#[cube]
#[allow(clippy::too_many_arguments)]
fn write_normed<F: Float, W: Float>(
    src: &Tensor<F>,
    weight: &Tensor<W>,
    y: &mut Tensor<F>,
    base: usize,
    dim: usize,
    inv: f32,
    unit: usize,
    #[comptime] units: usize,
) {
    let mut c = unit;
    while c < dim {
        let v = f32::cast_from(src[base + c]) * inv * f32::cast_from(weight[c]);
        y[base + c] = F::cast_from(v);
        c += units;
    }
}

/// Per row (one cube), with `g = dy · weight`:
/// `dx = inv · g − x · inv³ · mean(g · x)`.
#[cube(launch)]
pub fn rms_norm_backward_input<F: Float, W: Float>(
    x: &Tensor<F>,
    weight: &Tensor<W>,
    inv_rms: &Tensor<f32>,
    d_y: &Tensor<F>,
    d_x: &mut Tensor<F>,
    rows: u32,
    dim_len: u32,
    #[comptime] units: usize,
    #[define(F, W)] _dtypes: [StorageType; 2],
) {
    let row = CUBE_POS;
    if row < rows as usize {
        let dim = dim_len as usize;
        let base = row * dim;
        let unit = UNIT_POS_X as usize;
        let mut dot = 0.0f32;
        let mut c = unit;
        while c < dim {
            let g = f32::cast_from(d_y[base + c]) * f32::cast_from(weight[c]);
            dot += g * f32::cast_from(x[base + c]);
            c += units;
        }
        let mut sums = SharedMemory::<f32>::new(units);
        sums[unit] = dot;
        cube_reduce(&mut sums, unit, false);
        let inv = inv_rms[row];
        let coef = inv * inv * inv * sums[0] / f32::cast_from(dim_len);
        let mut c = unit;
        while c < dim {
            let g = f32::cast_from(d_y[base + c]) * f32::cast_from(weight[c]);
            let v = inv * g - f32::cast_from(x[base + c]) * coef;
            d_x[base + c] = F::cast_from(v);
            c += units;
        }
    }
}

/// `partial[chunk, c] = Σ_{rows r of the chunk} dy[r, c] · x[r, c] · inv_rms[r]`, one unit
/// per (chunk, column); the weight gradient is the sum of `partial` over chunks.
#[cube(launch)]
pub fn rms_norm_backward_weight<F: Float>(
    x: &Tensor<F>,
    inv_rms: &Tensor<f32>,
    d_y: &Tensor<F>,
    partial: &mut Tensor<f32>,
    rows: u32,
    dim_len: u32,
    chunk_rows: u32,
    #[define(F)] _dtype: StorageType,
) {
    let dim = dim_len as usize;
    let idx = ABSOLUTE_POS;
    if idx < partial.len() {
        let chunk = idx / dim;
        let c = idx % dim;
        let start = chunk * chunk_rows as usize;
        let end = min(start + chunk_rows as usize, rows as usize);
        let mut acc = 0.0f32;
        let mut r = start;
        while r < end {
            let at = r * dim + c;
            acc += f32::cast_from(d_y[at]) * f32::cast_from(x[at]) * inv_rms[r];
            r += 1;
        }
        partial[idx] = acc;
    }
}

/// Per row (one cube), inference only: `sum = x + delta` (stored in F, then normalised as
/// stored, so it matches an add followed by [`rms_norm_forward`]) and
/// `y = sum / √(mean(sum²) + eps) · weight`: a residual connection and the next norm in one
/// launch instead of two.
#[cube(launch)]
pub fn add_rms_norm_forward<F: Float, W: Float>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    weight: &Tensor<W>,
    sum: &mut Tensor<F>,
    y: &mut Tensor<F>,
    rows: u32,
    dim_len: u32,
    eps: f32,
    #[comptime] units: usize,
    #[define(F, W)] _dtypes: [StorageType; 2],
) {
    let row = CUBE_POS;
    if row < rows as usize {
        let dim = dim_len as usize;
        let base = row * dim;
        let unit = UNIT_POS_X as usize;
        let mut sum_sq = 0.0f32;
        let mut c = unit;
        while c < dim {
            let s = F::cast_from(f32::cast_from(x[base + c]) + f32::cast_from(delta[base + c]));
            sum[base + c] = s;
            let v = f32::cast_from(s);
            sum_sq += v * v;
            c += units;
        }
        let inv = row_inv_rms(sum_sq, unit, dim_len, eps, units);
        // Each unit reads back only the elements it wrote above.
        write_normed(sum, weight, y, base, dim, inv, unit, units);
    }
}
