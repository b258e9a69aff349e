//! Weight matrices kept in their GGUF quantised blocks, for CPU inference.
//!
//! Decoding a few rows at a time streams every weight once per token, so its speed is the
//! memory traffic of the weights: 4 bytes a weight as f32, 0.56 as Q4_1. [`PackedMatrix`]
//! keeps the file's blocks; [`PackedMatrix::product`] dequantises a few rows at a time
//! into a buffer that stays in cache and multiplies them with every row of `x` there
//! (the f32 path's tiled dot products, [`crate::cpu_dot`]) — or, for up to
//! [`IN_REGISTERS_MAX_ROWS`] rows of `x` on AVX2, multiplies each 32 values of a block as
//! soon as they are dequantised into registers. The block values are
//! exactly the dequantised f32 weights (the same formulas, see
//! [`crate::pretrained::gguf::dequantize`]), so the products equal the f32 model's up to
//! the order of the sums.

use std::cell::RefCell;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::cpu_dot::lane_sum;
use crate::cpu_dot::{avx2_fma, rows_times_x, transpose};
use crate::pretrained::gguf::GgmlType;
use crate::pretrained::gguf::dequant::{
    BlockQ4K, BlockQ6K, BlockQ40, BlockQ41, BlockQ50, BlockQ80, QuantBlock,
};

/// Rows of `x` one product takes at most (the decode batch; prefill uses the f32 weights).
pub const MAX_ROWS: usize = 16;

/// Weight rows per parallel task: dequantised together into a scratch buffer (up to
/// 8 × 4864 f32 = 152 KiB, within L2), then multiplied as f32 rows.
const TASK_ROWS: usize = 8;

/// Block types with a product kernel here.
pub const PACKED_TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// `$f::<QB>(args)` for the [`QuantBlock`] type of GGML type `$ty`.
macro_rules! for_block_type {
    ($ty:expr, $f:ident($($arg:expr),*)) => {
        match $ty {
            GgmlType::Q4_0 => $f::<BlockQ40>($($arg),*),
            GgmlType::Q4_1 => $f::<BlockQ41>($($arg),*),
            GgmlType::Q5_0 => $f::<BlockQ50>($($arg),*),
            GgmlType::Q8_0 => $f::<BlockQ80>($($arg),*),
            GgmlType::Q4_K => $f::<BlockQ4K>($($arg),*),
            GgmlType::Q6_K => $f::<BlockQ6K>($($arg),*),
            other => unreachable!("{other} was rejected by PackedMatrix::new"),
        }
    };
}

/// A `[rows, cols]` matrix as row-major runs of quantised blocks, in one or more parts of
/// whole rows, each part with its own block type (a stacked q/k/v projection whose three
/// tensors were quantised differently).
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    cols: usize,
    parts: Vec<PackedPart>,
}

#[derive(Debug, Clone)]
struct PackedPart {
    ty: GgmlType,
    rows: usize,
    bytes: Vec<u8>,
}

impl PackedMatrix {
    /// Stacks `parts` of `(type, rows, blocks)` row-wise. The error names the part whose
    /// type has no kernel or whose bytes are not `rows` rows of `cols` elements.
    pub fn new(cols: usize, parts: Vec<(GgmlType, usize, Vec<u8>)>) -> Result<Self, String> {
        let mut checked = Vec::with_capacity(parts.len());
        for (i, (ty, rows, bytes)) in parts.into_iter().enumerate() {
            if !PACKED_TYPES.contains(&ty) {
                return Err(format!("part {i}: no packed product for {ty}"));
            }
            let row_bytes = ty
                .bytes_for(cols)
                .ok_or_else(|| format!("part {i}: a row of {cols} is not whole {ty} blocks"))?;
            if bytes.len() != rows * row_bytes {
                return Err(format!(
                    "part {i}: {rows} rows of {cols} {ty} elements need {} bytes, got {}",
                    rows * row_bytes,
                    bytes.len()
                ));
            }
            checked.push(PackedPart { ty, rows, bytes });
        }
        Ok(Self {
            cols,
            parts: checked,
        })
    }

    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `x [m, cols] · selfᵀ` as `[m, rows]` row-major, for `m <= MAX_ROWS`.
    pub fn product(&self, x: &[f32], m: usize) -> Vec<f32> {
        let k = self.cols;
        assert!(
            (1..=MAX_ROWS).contains(&m) && x.len() == m * k,
            "packed product of {m} rows of {k}: x has {} values",
            x.len()
        );
        // [rows, m] so that each task owns a contiguous block; transposed at the end.
        let mut out_t = vec![0f32; self.rows() * m];
        let mut rest = out_t.as_mut_slice();
        for part in &self.parts {
            let (mine, tail) = rest.split_at_mut(part.rows * m);
            rest = tail;
            let row_bytes = part.bytes.len() / part.rows;
            mine.par_chunks_mut(TASK_ROWS * m)
                .zip(part.bytes.par_chunks(TASK_ROWS * row_bytes))
                .for_each(|(block, bytes)| {
                    for_block_type!(part.ty, rows_times_x_of(bytes, x, m, k, block))
                });
        }
        transpose(&out_t, self.rows(), m)
    }
}

thread_local! {
    /// A task's rows dequantised (reused: a fresh buffer of this size per task would be
    /// a fresh mapping, zeroed page by page).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Rows of `x` up to which a product keeps each dequantised block in registers, multiplied
/// as soon as it is made; more rows amortise a scratch copy of the rows over the tiled dots.
pub const IN_REGISTERS_MAX_ROWS: usize = 4;

/// `block[j * m + r] = w_j · x_r` for the weight rows in `bytes` (whole rows of `QB`
/// blocks) and the `m` rows of `x` (`[m, k]`).
fn rows_times_x_of<QB: QuantBlock>(bytes: &[u8], x: &[f32], m: usize, k: usize, block: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if QB::VECTOR_GROUPS > 0 && m <= IN_REGISTERS_MAX_ROWS && avx2_fma() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
        unsafe { rows_times_x_in_registers::<QB>(bytes, x, m, k, block) };
        return;
    }
    SCRATCH.with_borrow_mut(|w| {
        w.resize(block.len() / m * k, 0.0);
        rows_of::<QB>(bytes, w);
        rows_times_x(w, k, x, m, block);
    })
}

/// [`rows_times_x_of`] for the types with AVX2 vectors, each 32-value group multiplied with
/// `x` straight away (two partial sums per row of `x`, so consecutive multiply-adds do
/// not wait on each other).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_times_x_in_registers<QB: QuantBlock>(
    bytes: &[u8],
    x: &[f32],
    m: usize,
    k: usize,
    block: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(QB::VECTOR_GROUPS * 32 == QB::ELEMS && m <= IN_REGISTERS_MAX_ROWS && x.len() == m * k);
    let row_bytes = k / QB::ELEMS * QB::BYTES;
    for (row, out) in bytes.chunks_exact(row_bytes).zip(block.chunks_exact_mut(m)) {
        let mut acc = [[_mm256_setzero_ps(); 2]; IN_REGISTERS_MAX_ROWS];
        for (b, quants) in row.chunks_exact(QB::BYTES).enumerate() {
            for group in 0..QB::VECTOR_GROUPS {
                // SAFETY: the caller has AVX2 (this function's features).
                let w = unsafe { QB::vectors_avx2(quants, group) };
                let start = QB::ELEMS * b + 32 * group;
                for (r, acc) in acc.iter_mut().enumerate().take(m) {
                    let xs = &x[r * k + start..][..32];
                    for (i, w) in w.into_iter().enumerate() {
                        // SAFETY: 8 floats at 8i of the 32 in `xs`.
                        let xv = unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * i)) };
                        acc[i % 2] = _mm256_fmadd_ps(w, xv, acc[i % 2]);
                    }
                }
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            *o = lane_sum(_mm256_add_ps(acc[0], acc[1]));
        }
    }
}

/// Dequantises whole rows of `ty` blocks into `out` (its length: the elements they hold).
#[cfg(test)]
fn dequantize_rows(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    for_block_type!(ty, rows_of(bytes, out))
}

fn rows_of<QB: QuantBlock>(bytes: &[u8], out: &mut [f32]) {
    let blocks = out
        .chunks_exact_mut(QB::ELEMS)
        .zip(bytes.chunks_exact(QB::BYTES));
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        for (o, b) in blocks {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
            unsafe { block_avx2::<QB>(b, o) };
        }
        return;
    }
    for (o, b) in blocks {
        QB::dequant(b, o);
    }
}

/// One block, out of line and compiled for AVX2 (the values are the same as the portable
/// code's: no fused multiply-add). Inlined into the loop over blocks, the compiler
/// vectorised the legacy types across blocks (gathering bytes one by one) rather than
/// within one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
unsafe fn block_avx2<QB: QuantBlock>(b: &[u8], o: &mut [f32]) {
    // SAFETY: compiled for and run on an AVX2 + F16C CPU (the caller checked).
    unsafe { QB::dequant_avx2(b, o) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretrained::gguf::dequantize;

    /// `rows` rows of random blocks of `ty` whose scales are sane (f16 1/64) and whose
    /// other bytes are pseudo-random.
    fn random_blocks(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let n = ty.bytes_for(rows * cols).unwrap();
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut bytes: Vec<u8> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        // Put a modest f16 at every half-float scale position so values stay finite.
        let scale = half::f16::from_f32(1.0 / 64.0).to_le_bytes();
        let half_offsets: &[usize] = match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
            GgmlType::Q4_1 => &[0, 2],
            GgmlType::Q4_K => &[0, 2],
            GgmlType::Q6_K => &[208],
            _ => unreachable!(),
        };
        for block in bytes.chunks_exact_mut(ty.block_bytes()) {
            for &o in half_offsets {
                block[o..o + 2].copy_from_slice(&scale);
            }
        }
        bytes
    }

    fn plain_product(w: &[f32], x: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]))
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn products_match_the_dequantised_weights_for_every_type() {
        let k = 512;
        for (t, ty) in PACKED_TYPES.into_iter().enumerate() {
            for m in [1, 2, 3, 4, 5, 8, MAX_ROWS] {
                // Two parts of different types, rows not a multiple of the task size.
                let other = PACKED_TYPES[(t + 1) % PACKED_TYPES.len()];
                let (a, b) = (37, 5);
                let bytes_a = random_blocks(ty, a, k, t as u64);
                let bytes_b = random_blocks(other, b, k, 99 + t as u64);
                let mut w = dequantize(ty, &bytes_a, a * k).unwrap();
                w.extend(dequantize(other, &bytes_b, b * k).unwrap());
                let packed =
                    PackedMatrix::new(k, vec![(ty, a, bytes_a), (other, b, bytes_b)]).unwrap();
                assert_eq!((packed.rows(), packed.cols()), (a + b, k));
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                    .collect();
                let want = plain_product(&w, &x, m, k, a + b);
                let got = packed.product(&x, m);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{ty} m={m} [{i}]: {g} vs {e}"
                    );
                }
            }
        }
    }

    /// The AVX2 build of the block code gives exactly the reference dequantisation.
    #[test]
    fn row_dequantisation_is_the_reference() {
        for (t, ty) in PACKED_TYPES.into_iter().enumerate() {
            let (rows, k) = (3, 512);
            let bytes = random_blocks(ty, rows, k, 40 + t as u64);
            let mut got = vec![0f32; rows * k];
            dequantize_rows(ty, &bytes, &mut got);
            let want = dequantize(ty, &bytes, rows * k).unwrap();
            let same = got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{ty}");
        }
    }

    #[test]
    fn bad_parts_are_named() {
        let err = PackedMatrix::new(32, vec![(GgmlType::F16, 1, vec![0; 64])]).unwrap_err();
        assert!(err.contains("no packed product for"), "{err}");
        let err = PackedMatrix::new(48, vec![(GgmlType::Q8_0, 1, vec![0; 34])]).unwrap_err();
        assert!(err.contains("not whole"), "{err}");
        let err = PackedMatrix::new(32, vec![(GgmlType::Q8_0, 2, vec![0; 34])]).unwrap_err();
        assert!(err.contains("need 68 bytes, got 34"), "{err}");
    }

    /// Weight throughput of the products on a decode-sized shape (Qwen2.5-0.5B's MLP
    /// down projection: 896 × 4864). Run in release:
    /// `cargo test --release -p lm-core --lib packed::tests::product_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run in release"]
    fn product_throughput() {
        let (n, k) = (896, 4864);
        for ty in PACKED_TYPES {
            let packed = PackedMatrix::new(k, vec![(ty, n, random_blocks(ty, n, k, 7))]).unwrap();
            for m in [1, 4, 8] {
                let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 / 13.0).collect();
                let mut best = f64::MAX;
                for _ in 0..30 {
                    let start = std::time::Instant::now();
                    std::hint::black_box(packed.product(&x, m));
                    best = best.min(start.elapsed().as_secs_f64());
                }
                println!(
                    "{ty} m={m}: {:.3} ms, {:.2} G weights/s",
                    best * 1e3,
                    (n * k) as f64 / best / 1e9
                );
            }
        }
    }
}
