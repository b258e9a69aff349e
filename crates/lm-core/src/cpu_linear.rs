//! `x Wᵀ` on the plain burn-ndarray backend without its two costly habits.
//!
//! burn-ndarray makes every matmul operand contiguous first, so `x Wᵀ` with PyTorch-layout
//! weights copies all of `W` on each call; and `matrixmultiply` computes whole 16-row tiles
//! and repacks `W` per call, so one token (decoding) does ~16× the arithmetic. Here:
//! - up to [`MAX_ROWS`] rows of `x`: each row of `W` is streamed once and dotted with every
//!   row of `x` (threads over output features; AVX2+FMA when the CPU has it);
//! - more rows (prefill): `(W xᵀ)ᵀ`, which copies only `x` and hands `matrixmultiply`
//!   contiguous `W`.
//!
//! Autodiff backends never take this path (their type differs), so training is unchanged.

use std::any::Any;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

/// Rows of `x` up to which each weight row is streamed once and dotted with all of them.
pub const MAX_ROWS: usize = 16;

/// Output features per parallel task.
const CHUNK: usize = 64;

type Cpu = NdArray<f32>;

/// `x [m, k] · Wᵀ` for a contiguous row-major `weight [n, k]` when `B` is `NdArray<f32>`;
/// `None` otherwise (the caller uses burn's matmul).
pub fn try_linear<B: Backend>(x: &Tensor<B, 2>, weight: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    let [n, k2] = weight.dims();
    if k != k2 {
        return None;
    }
    let x = as_cpu(x.clone())?;
    let w = as_cpu(weight.clone())?;
    let y = if m <= MAX_ROWS {
        small_rows(x, w, m, k, n)?
    } else {
        w.matmul(x.transpose()).transpose()
    };
    (Box::new(y) as Box<dyn Any>)
        .downcast::<Tensor<B, 2>>()
        .ok()
        .map(|b| *b)
}

fn as_cpu<B: Backend>(t: Tensor<B, 2>) -> Option<Tensor<Cpu, 2>> {
    (Box::new(t) as Box<dyn Any>)
        .downcast::<Tensor<Cpu, 2>>()
        .ok()
        .map(|b| *b)
}

fn small_rows(
    x: Tensor<Cpu, 2>,
    w: Tensor<Cpu, 2>,
    m: usize,
    k: usize,
    n: usize,
) -> Option<Tensor<Cpu, 2>> {
    let device = x.device();
    let xs = x.into_data().convert::<f32>().to_vec::<f32>().ok()?;
    let NdArrayTensor::F32(storage) = w.into_primitive().tensor() else {
        return None;
    };
    let view = storage.view();
    if view.strides() != [k as isize, 1] {
        return None;
    }
    let weights = view.as_slice_memory_order()?;
    // [n, m] so that each task owns a contiguous block; transposed below (small).
    let mut out_t = vec![0f32; n * m];
    out_t
        .par_chunks_mut(CHUNK * m)
        .enumerate()
        .for_each(|(c, block)| {
            for (j, cell) in block.chunks_mut(m).enumerate() {
                let row = &weights[(c * CHUNK + j) * k..][..k];
                for (r, v) in cell.iter_mut().enumerate() {
                    *v = dot(&xs[r * k..][..k], row);
                }
            }
        });
    let mut out = vec![0f32; m * n];
    for (o, cell) in out_t.chunks(m).enumerate() {
        for (r, &v) in cell.iter().enumerate() {
            out[r * n + o] = v;
        }
    }
    Some(Tensor::from_data(TensorData::new(out, [m, n]), &device))
}

/// Dot product of equal-length slices (f32 with several partial sums, like any GEMM).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 floats at offsets i + 8u + 0..8 < n (loop bounds).
    unsafe {
        while i + 32 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * u));
                let y = _mm256_loadu_ps(pb.add(i + 8 * u));
                *s = _mm256_fmadd_ps(x, y, *s);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds exactly 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum::<f32>()
        + a[i..n]
            .iter()
            .zip(&b[i..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = NdArray<f32>;

    fn product(m: usize, k: usize, n: usize) {
        let dev = Default::default();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [m, k]), &dev);
        let wt = Tensor::<B, 2>::from_data(TensorData::new(w.clone(), [n, k]), &dev);
        let got = try_linear(&xt, &wt).expect("fast path taken");
        let got = got.into_data().to_vec::<f32>().unwrap();
        for r in 0..m {
            for o in 0..n {
                let want: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[o * k + i] as f64)
                    .sum();
                let g = got[r * n + o];
                assert!((g as f64 - want).abs() < 1e-3, "[{r}, {o}]: {g} vs {want}");
            }
        }
    }

    #[test]
    fn matches_a_plain_product_for_few_and_many_rows() {
        product(1, 37, 300);
        product(3, 100, 129);
        product(MAX_ROWS + 5, 40, 70);
    }

    #[test]
    fn dot_kernels_agree() {
        let a: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.11).cos()).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-3);
        assert!((dot_portable(&a, &b) as f64 - want).abs() < 1e-3);
    }

    #[test]
    fn autodiff_keeps_burns_matmul() {
        let dev = Default::default();
        type Ad = burn::backend::Autodiff<B>;
        let x = Tensor::<Ad, 2>::zeros([1, 8], &dev);
        let w = Tensor::<Ad, 2>::zeros([4, 8], &dev);
        assert!(try_linear(&x, &w).is_none());
    }
}
