//! Dot-product kernels over f32 slices for the CPU's small-row products (`cpu_linear`'s
//! f32 weights, `packed`'s dequantised blocks): AVX2 + FMA chosen at run time, a portable
//! loop otherwise.

/// `block[j * m + r] = w_j · x_r` for the weight rows `w` (`block.len() / m` rows of `k`,
/// contiguous) and the `m` rows of `xs` (`[m, k]`).
pub fn rows_times_x(w: &[f32], k: usize, xs: &[f32], m: usize, block: &mut [f32]) {
    let features = block.len() / m;
    let w_row = |j: usize| &w[j * k..][..k];
    let x_row = |r: usize| &xs[r * k..][..k];
    let mut j = 0;
    // Tiles of 4 weight rows × 2 rows of x: each loaded vector feeds 2 or 4 FMAs, where a
    // lone dot product loads two vectors per FMA.
    if tiles_available() {
        while j + TILE_W <= features {
            let w = [w_row(j), w_row(j + 1), w_row(j + 2), w_row(j + 3)];
            let mut r = 0;
            while r + TILE_X <= m {
                let sums = dots_tile(w, [x_row(r), x_row(r + 1)]);
                for (jj, pair) in sums.iter().enumerate() {
                    block[(j + jj) * m + r] = pair[0];
                    block[(j + jj) * m + r + 1] = pair[1];
                }
                r += TILE_X;
            }
            for r in r..m {
                for (jj, row) in w.iter().enumerate() {
                    block[(j + jj) * m + r] = dot(x_row(r), row);
                }
            }
            j += TILE_W;
        }
    }
    for j in j..features {
        for r in 0..m {
            block[j * m + r] = dot(x_row(r), w_row(j));
        }
    }
}

/// `cells [n, m]` (row-major) as `[m, n]`.
pub fn transpose(cells: &[f32], n: usize, m: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for (o, cell) in cells.chunks(m).enumerate() {
        for (r, &v) in cell.iter().enumerate() {
            out[r * n + o] = v;
        }
    }
    out
}

/// Weight rows and x rows of one [`dots_tile`].
const TILE_W: usize = 4;
const TILE_X: usize = 2;

/// Whether [`dots_tile`] runs here (AVX2 + FMA).
fn tiles_available() -> bool {
    avx2_fma()
}

/// Whether the CPU has AVX2 and FMA (and F16C, which every such CPU has and the packed
/// products use for block scales).
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `[w_j · x_r]` for 4 weight rows and 2 x rows of equal length; only where
/// [`tiles_available`] (else the plain dot products).
fn dots_tile(w: [&[f32]; TILE_W], x: [&[f32]; TILE_X]) -> [[f32; TILE_X]; TILE_W] {
    #[cfg(target_arch = "x86_64")]
    if tiles_available() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { dots_tile_avx2(w, x) };
    }
    w.map(|row| x.map(|xr| dot_portable(xr, row)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_tile_avx2(w: [&[f32]; TILE_W], x: [&[f32]; TILE_X]) -> [[f32; TILE_X]; TILE_W] {
    use std::arch::x86_64::*;
    let n = w.iter().chain(&x).map(|s| s.len()).min().unwrap_or(0);
    let mut acc = [[_mm256_setzero_ps(); TILE_X]; TILE_W];
    let mut i = 0;
    // SAFETY: every load reads 8 floats at offsets i..i + 8 <= n of slices of length >= n.
    unsafe {
        while i + 8 <= n {
            let xv = [
                _mm256_loadu_ps(x[0].as_ptr().add(i)),
                _mm256_loadu_ps(x[1].as_ptr().add(i)),
            ];
            for (row, acc_row) in w.iter().zip(acc.iter_mut()) {
                let wv = _mm256_loadu_ps(row.as_ptr().add(i));
                for (a, xv) in acc_row.iter_mut().zip(xv) {
                    *a = _mm256_fmadd_ps(wv, xv, *a);
                }
            }
            i += 8;
        }
    }
    let mut out = [[0f32; TILE_X]; TILE_W];
    for (j, (acc_row, out_row)) in acc.iter().zip(out.iter_mut()).enumerate() {
        for (r, (a, o)) in acc_row.iter().zip(out_row.iter_mut()).enumerate() {
            let tail: f32 = (i..n).map(|t| w[j][t] * x[r][t]).sum();
            *o = lane_sum(*a) + tail;
        }
    }
    out
}

/// Dot product of equal-length slices (f32 with several partial sums, like any GEMM).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
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
    lane_sum(sum)
        + a[i..n]
            .iter()
            .zip(&b[i..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

/// The sum of the 8 lanes of `v`, first to last.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) fn lane_sum(v: std::arch::x86_64::__m256) -> f32 {
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds exactly 8 floats.
    unsafe { std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), v) };
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_matches_separate_dot_products() {
        let row = |seed: usize| -> Vec<f32> {
            (0..91)
                .map(|i| ((i * seed % 23) as f32 - 11.0) / 7.0)
                .collect()
        };
        let (w, x) = ([row(3), row(5), row(7), row(11)], [row(13), row(17)]);
        let sums = dots_tile([&w[0], &w[1], &w[2], &w[3]], [&x[0], &x[1]]);
        for (j, pair) in sums.iter().enumerate() {
            for (r, got) in pair.iter().enumerate() {
                let want: f64 = w[j]
                    .iter()
                    .zip(&x[r])
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                assert!(
                    (*got as f64 - want).abs() < 1e-3,
                    "[{j}, {r}]: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn dot_kernels_agree() {
        let a: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.11).cos()).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-3);
        assert!((dot_portable(&a, &b) as f64 - want).abs() < 1e-3);
    }
}
