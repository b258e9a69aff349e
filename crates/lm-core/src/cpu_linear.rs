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

use crate::cpu_dot::{rows_times_x, transpose};
use crate::packed::{self, PackedMatrix};

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
    downcast(y)
}

fn as_cpu<B: Backend>(t: Tensor<B, 2>) -> Option<Tensor<Cpu, 2>> {
    downcast(t)
}

/// `x`'s values in row-major order, copied from its buffer: `into_data` of an array that
/// is shared (as the caller's `x` is) iterates element by element through a dynamic-rank
/// index, which took ~10% of a CPU decode step.
pub(crate) fn row_major<const D: usize>(x: Tensor<Cpu, D>) -> Option<Vec<f32>> {
    let NdArrayTensor::F32(storage) = x.into_primitive().tensor() else {
        return None;
    };
    let view = storage.view();
    Some(match view.as_slice() {
        Some(values) => values.to_vec(),
        None => view.iter().copied().collect(),
    })
}

/// `value` as type `T` when it is one (a generic backend's tensor as the concrete ndarray
/// one and back), else `None`.
pub(crate) fn downcast<A: 'static, T: 'static>(value: A) -> Option<T> {
    (Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
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
    let xs = row_major(x)?;
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
            let rows = &weights[c * CHUNK * k..][..block.len() / m * k];
            rows_times_x(rows, k, &xs, m, block);
        });
    let out = transpose(&out_t, n, m);
    Some(Tensor::from_data(TensorData::new(out, [m, n]), &device))
}

/// `x [m, k] · Wᵀ` with `W` as its quantised blocks when `B` is `NdArray<f32>` and `m` is at
/// most [`packed::MAX_ROWS`]; `None` otherwise (the caller uses the f32 weights).
pub fn try_packed_linear<B: Backend>(
    x: &Tensor<B, 2>,
    packed: &PackedMatrix,
) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    if m > packed::MAX_ROWS || m == 0 || k != packed.cols() {
        return None;
    }
    let x = as_cpu(x.clone())?;
    let device = x.device();
    let xs = row_major(x)?;
    let y = packed.product(&xs, m);
    downcast(Tensor::<Cpu, 2>::from_data(
        TensorData::new(y, [m, packed.rows()]),
        &device,
    ))
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
        // Whole 4 × 2 tiles and every remainder: odd rows, features not a multiple of 4
        // within a chunk or in the last chunk, k not a multiple of 8.
        product(8, 64, 256);
        product(7, 43, 131);
        product(MAX_ROWS + 5, 40, 70);
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
