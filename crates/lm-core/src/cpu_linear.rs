//! A CPU fast path for `x Wᵀ` with few rows of `x` (token-by-token decoding) on the plain
//! burn-ndarray backend.
//!
//! burn-ndarray hands every matmul to `matrixmultiply`, whose micro-kernels compute whole
//! 16-row tiles and repack all of `W` on each call: at one row that is ~16× the work and
//! an extra copy of every weight per token. Here a row block streams each weight once,
//! split over threads by output feature. Autodiff backends never take this path (their
//! type differs), so training is unchanged.

use std::any::Any;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

/// Rows of `x` up to which the fast path is used (each weight is read once per call).
const MAX_ROWS: usize = 16;

/// Output features per parallel task.
const CHUNK: usize = 64;

/// `x [m, k] · Wᵀ` for `weight [n, k]`, when `B` is `NdArray<f32>`, `m ≤ 16` and the
/// weight is contiguous in memory (row-major, or the column-major transposed view the
/// pretrained loader stores); `None` otherwise (the caller uses burn's matmul).
pub fn try_small_linear<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    let [n, k2] = weight.dims();
    if m > MAX_ROWS || k != k2 {
        return None;
    }
    let x = (Box::new(x.clone()) as Box<dyn Any>)
        .downcast::<Tensor<NdArray<f32>, 2>>()
        .ok()?;
    let w = (Box::new(weight.clone()) as Box<dyn Any>)
        .downcast::<Tensor<NdArray<f32>, 2>>()
        .ok()?;
    let device = x.device();
    let xs = x.into_data().convert::<f32>().to_vec::<f32>().ok()?;
    let NdArrayTensor::F32(storage) = w.into_primitive().tensor() else {
        return None;
    };
    let view = storage.view();
    let strides = view.strides().to_vec();
    let data = view.as_slice_memory_order()?;
    let mut out = vec![0f32; m * n];
    if strides == [k as isize, 1] {
        rows_dot(&xs, data, &mut out, m, k, n);
    } else if strides == [1, n as isize] {
        columns_axpy(&xs, data, &mut out, m, k, n);
    } else {
        return None;
    }
    let y = Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(out, [m, n]), &device);
    (Box::new(y) as Box<dyn Any>)
        .downcast::<Tensor<B, 2>>()
        .ok()
        .map(|b| *b)
}

/// `W` row-major `[n, k]`: `out[r, o] = x[r] · W[o]`, tasks over blocks of `o`.
fn rows_dot(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    let mut out_t = vec![0f32; n * m]; // [n, m]: each task owns contiguous rows
    out_t
        .par_chunks_mut(CHUNK * m)
        .enumerate()
        .for_each(|(c, block)| {
            for (j, cell) in block.chunks_mut(m).enumerate() {
                let row = &w[(c * CHUNK + j) * k..][..k];
                for (r, v) in cell.iter_mut().enumerate() {
                    *v = dot(&x[r * k..][..k], row);
                }
            }
        });
    for o in 0..n {
        for r in 0..m {
            out[r * n + o] = out_t[o * m + r];
        }
    }
}

/// `W` stored as contiguous `Wᵀ [k, n]`: `out[r] = Σ_i x[r, i] Wᵀ[i]`, tasks over column
/// blocks.
fn columns_axpy(x: &[f32], wt: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    const COLS: usize = 256;
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(COLS))
        .into_par_iter()
        .map(|b| {
            let (c0, c1) = (b * COLS, ((b + 1) * COLS).min(n));
            let mut acc = vec![0f32; m * (c1 - c0)];
            for i in 0..k {
                let w = &wt[i * n + c0..i * n + c1];
                for r in 0..m {
                    let xi = x[r * k + i];
                    let a = &mut acc[r * (c1 - c0)..(r + 1) * (c1 - c0)];
                    for (acc, &wv) in a.iter_mut().zip(w) {
                        *acc += xi * wv;
                    }
                }
            }
            (c0, acc)
        })
        .collect();
    for (c0, acc) in blocks {
        let width = acc.len() / m;
        for r in 0..m {
            out[r * n + c0..r * n + c0 + width].copy_from_slice(&acc[r * width..(r + 1) * width]);
        }
    }
}

/// Dot product with 8 independent partial sums (vectorisable; f32 like any GEMM).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = NdArray<f32>;

    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for o in 0..n {
                out[r * n + o] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[o * k + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn both_layouts_match_a_plain_product() {
        let dev = Default::default();
        let (m, k, n) = (3, 37, 300);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let want = reference(&x, &w, m, k, n);
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x, [m, k]), &dev);
        let row_major = Tensor::<B, 2>::from_data(TensorData::new(w.clone(), [n, k]), &dev);
        // The same matrix stored column-major: a transposed view of contiguous Wᵀ.
        let mut wt = vec![0f32; n * k];
        for o in 0..n {
            for i in 0..k {
                wt[i * n + o] = w[o * k + i];
            }
        }
        let col_major = Tensor::<B, 2>::from_data(TensorData::new(wt, [k, n]), &dev).transpose();
        for weight in [row_major, col_major] {
            let got = try_small_linear(&xt, &weight).expect("fast path taken");
            let got = got.into_data().to_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let dev = Default::default();
        let big = Tensor::<B, 2>::zeros([MAX_ROWS + 1, 8], &dev);
        let w = Tensor::<B, 2>::zeros([4, 8], &dev);
        assert!(try_small_linear(&big, &w).is_none());
        type Ad = burn::backend::Autodiff<B>;
        let x = Tensor::<Ad, 2>::zeros([1, 8], &dev);
        let w = Tensor::<Ad, 2>::zeros([4, 8], &dev);
        assert!(
            try_small_linear(&x, &w).is_none(),
            "autodiff keeps burn's matmul"
        );
    }
}
