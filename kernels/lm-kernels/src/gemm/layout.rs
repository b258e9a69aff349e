//! A row-major (batched) product `C = A · B` as the column-major problem cuBLASLt solves.
//!
//! cuBLASLt is column-major. A row-major `X [r, c]` buffer read column-major is `Xᵀ [c, r]`,
//! so `C = A · B` is computed as `Cᵀ [n, m] = Bᵀ [n, k] · Aᵀ [k, m]`: B's buffer comes first,
//! A's second, and C is written contiguous row-major. A transposed view (`swap_dims`, no
//! copy) is a column-major buffer, which becomes a transpose flag instead of a copy.
//!
//! Pure shape arithmetic, so it is tested on every build (the GPU path is not).

/// One operand as cuBLASLt sees it: a column-major `rows × cols` matrix with leading
/// dimension `ld`, used as is or transposed, `batch_stride` elements between batch entries
/// (0: the same matrix for every entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operand {
    pub transpose: bool,
    pub rows: u64,
    pub cols: u64,
    pub ld: i64,
    pub batch_stride: i64,
}

/// The whole product: `batch` products of `[m, k] · [k, n]`; cuBLASLt's A is `first` (from
/// our B), its B is `second` (from our A), its C/D is `out` (`[n, m]` column-major, that is
/// C row-major and contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub first: Operand,
    pub second: Operand,
    pub out: Operand,
}

/// Why a product has no cuBLASLt form as laid out (the caller makes the operands contiguous
/// and asks again, or uses burn's matmul).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// Ranks differ, are below 2, or the inner dimensions disagree.
    Shapes,
    /// Batch dimensions differ and neither side is a single matrix to broadcast.
    Broadcast,
    /// A matrix has no unit stride, or its batch dimensions are not one uniform stride.
    Strides,
}

/// `Xᵀ` as a column-major operand, for `X` logical `[r, c]` with strides `(sr, sc)`.
fn transposed_view(r: usize, c: usize, sr: usize, sc: usize) -> Option<Operand> {
    let (r64, c64) = (r as u64, c as u64);
    if c == 1 || sc == 1 {
        // Row-major X: the buffer read column-major is Xᵀ [c, r] with ld = row stride.
        let ld = if r == 1 { c } else { sr };
        (ld >= c).then_some(Operand {
            transpose: false,
            rows: c64,
            cols: r64,
            ld: ld.max(1) as i64,
            batch_stride: 0,
        })
    } else if r == 1 || sr == 1 {
        // Column-major X [r, c] with ld = column stride; transposing it gives Xᵀ.
        let ld = if c == 1 { r } else { sc };
        (ld >= r).then_some(Operand {
            transpose: true,
            rows: r64,
            cols: c64,
            ld: ld.max(1) as i64,
            batch_stride: 0,
        })
    } else {
        None
    }
}

/// The element stride between consecutive matrices when the leading dims of `shape`
/// (everything but the last two) flatten into one index; `Some(0)` for a single matrix.
fn batch_stride(shape: &[usize], strides: &[usize]) -> Option<usize> {
    let batch = &shape[..shape.len() - 2];
    let mut stride = None;
    let mut expected = None;
    // Walk the batch dims from the innermost out; dims of size 1 have no stride to check.
    for (&size, &s) in batch.iter().zip(strides).rev() {
        if size == 1 {
            continue;
        }
        match expected {
            None => stride = Some(s),
            Some(e) if e != s => return None,
            Some(_) => {}
        }
        expected = Some(s * size);
    }
    Some(stride.unwrap_or(0))
}

/// The cuBLASLt problem for `A [.., m, k] · B [.., k, n]` with the given strides (elements).
pub fn plan(
    a_shape: &[usize],
    a_strides: &[usize],
    b_shape: &[usize],
    b_strides: &[usize],
) -> Result<Problem, Unsupported> {
    let rank = a_shape.len();
    if rank < 2 || b_shape.len() != rank || a_strides.len() != rank || b_strides.len() != rank {
        return Err(Unsupported::Shapes);
    }
    let (m, k) = (a_shape[rank - 2], a_shape[rank - 1]);
    let (k2, n) = (b_shape[rank - 2], b_shape[rank - 1]);
    if k != k2 {
        return Err(Unsupported::Shapes);
    }
    let count = |shape: &[usize]| shape[..rank - 2].iter().product::<usize>();
    let (a_batch, b_batch) = (count(a_shape), count(b_shape));
    let batch = if a_shape[..rank - 2] == b_shape[..rank - 2] {
        a_batch
    } else if a_batch == 1 || b_batch == 1 {
        a_batch.max(b_batch)
    } else {
        return Err(Unsupported::Broadcast);
    };
    let operand = |shape: &[usize], strides: &[usize], r: usize, c: usize| {
        let mut op = transposed_view(r, c, strides[rank - 2], strides[rank - 1])
            .ok_or(Unsupported::Strides)?;
        let own_batch = count(shape);
        op.batch_stride = if own_batch == 1 {
            0
        } else {
            batch_stride(shape, strides).ok_or(Unsupported::Strides)? as i64
        };
        Ok(op)
    };
    let first = operand(b_shape, b_strides, k, n)?;
    let second = operand(a_shape, a_strides, m, k)?;
    let out = Operand {
        transpose: false,
        rows: n as u64,
        cols: m as u64,
        ld: n.max(1) as i64,
        batch_stride: (m * n) as i64,
    };
    Ok(Problem {
        m,
        n,
        k,
        batch,
        first,
        second,
        out,
    })
}

/// The output shape of the product: the batch dims of the operand that has them, `[m, n]`.
pub fn output_shape(a_shape: &[usize], b_shape: &[usize]) -> Vec<usize> {
    let rank = a_shape.len();
    let batch_of = |s: &[usize]| s[..rank - 2].iter().product::<usize>();
    let mut out = if batch_of(a_shape) >= batch_of(b_shape) {
        a_shape.to_vec()
    } else {
        b_shape.to_vec()
    };
    out[rank - 2] = a_shape[rank - 2];
    out[rank - 1] = b_shape[rank - 1];
    out
}

/// Row-major contiguous strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference row-major batched product over explicit strides.
    fn reference(
        a: &[f32],
        a_shape: &[usize],
        a_strides: &[usize],
        b: &[f32],
        b_shape: &[usize],
        b_strides: &[usize],
    ) -> Vec<f32> {
        let out_shape = output_shape(a_shape, b_shape);
        let rank = out_shape.len();
        let (m, n, k) = (out_shape[rank - 2], out_shape[rank - 1], a_shape[rank - 1]);
        let batch: usize = out_shape[..rank - 2].iter().product();
        let index = |shape: &[usize], strides: &[usize], flat_batch: usize, i: usize, j: usize| {
            // Unflatten the batch index over `shape`'s batch dims (size-1 dims broadcast).
            let mut rem = flat_batch;
            let mut offset = 0;
            for d in (0..rank - 2).rev() {
                let size = out_shape[d];
                let idx = rem % size;
                rem /= size;
                if shape[d] != 1 {
                    offset += idx * strides[d];
                }
            }
            offset + i * strides[rank - 2] + j * strides[rank - 1]
        };
        let mut out = vec![0.0; batch * m * n];
        for bi in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    out[bi * m * n + i * n + j] = (0..k)
                        .map(|p| {
                            a[index(a_shape, a_strides, bi, i, p)]
                                * b[index(b_shape, b_strides, bi, p, j)]
                        })
                        .sum();
                }
            }
        }
        out
    }

    /// The column-major product cuBLASLt would compute from `problem`, written back as C.
    fn column_major(problem: &Problem, a: &[f32], b: &[f32]) -> Vec<f32> {
        let at = |op: &Operand, buf: &[f32], batch: usize, row: usize, col: usize| {
            // Element (row, col) of op(X) for the column-major X of `op`.
            let (r, c) = if op.transpose { (col, row) } else { (row, col) };
            buf[batch * op.batch_stride as usize + r + c * op.ld as usize]
        };
        let Problem { m, n, k, batch, .. } = *problem;
        let mut out = vec![0.0; batch * m * n];
        for bi in 0..batch {
            for col in 0..m {
                for row in 0..n {
                    let v: f32 = (0..k)
                        .map(|p| {
                            at(&problem.first, b, bi, row, p) * at(&problem.second, a, bi, p, col)
                        })
                        .sum();
                    out[bi * problem.out.batch_stride as usize
                        + row
                        + col * problem.out.ld as usize] = v;
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 17) as f32 - 8.0)
            .collect()
    }

    /// Strides of `shape` laid out in `order` (outermost first), for transposed views.
    fn permuted_strides(shape: &[usize], order: &[usize]) -> Vec<usize> {
        let mut strides = vec![0; shape.len()];
        let mut acc = 1;
        for &d in order.iter().rev() {
            strides[d] = acc;
            acc *= shape[d];
        }
        strides
    }

    fn check(a_shape: &[usize], a_strides: &[usize], b_shape: &[usize], b_strides: &[usize]) {
        let span = |shape: &[usize], strides: &[usize]| {
            1 + shape
                .iter()
                .zip(strides)
                .map(|(s, st)| (s - 1) * st)
                .sum::<usize>()
        };
        let a = values(span(a_shape, a_strides), 1);
        let b = values(span(b_shape, b_strides), 7);
        let problem = plan(a_shape, a_strides, b_shape, b_strides).expect("a cuBLASLt form");
        assert_eq!(
            column_major(&problem, &a, &b),
            reference(&a, a_shape, a_strides, &b, b_shape, b_strides),
            "{a_shape:?}/{a_strides:?} · {b_shape:?}/{b_strides:?}"
        );
    }

    #[test]
    fn contiguous_and_transposed_views_give_the_row_major_product() {
        let (m, k, n) = (3, 5, 4);
        check(
            &[m, k],
            &contiguous_strides(&[m, k]),
            &[k, n],
            &contiguous_strides(&[k, n]),
        );
        // x · Wᵀ with W [n, k] contiguous: B is a transposed view.
        check(&[m, k], &contiguous_strides(&[m, k]), &[k, n], &[1, k]);
        // Aᵀ · B (a weight gradient): A is a transposed view.
        check(&[m, k], &[1, m], &[k, n], &contiguous_strides(&[k, n]));
        check(&[m, k], &[1, m], &[k, n], &[1, k]);
        // Single rows and columns (decoding: m = 1).
        check(&[1, k], &[k, 1], &[k, n], &[1, k]);
        check(&[m, 1], &[1, 1], &[1, n], &[n, 1]);
    }

    #[test]
    fn batched_products_flatten_their_batch_dims() {
        // Attention: q [b, h, s, d] · kᵀ where k [b, h, s, d] is viewed as [b, h, d, s].
        let (b, h, s, d) = (2, 3, 4, 5);
        let q = [b, h, s, d];
        let k_t = [b, h, d, s];
        let k_strides = permuted_strides(&k_t, &[0, 1, 3, 2]);
        check(&q, &contiguous_strides(&q), &k_t, &k_strides);
        // A shared right operand broadcast over the batch.
        check(
            &[b, h, s, d],
            &contiguous_strides(&q),
            &[1, 1, d, s],
            &contiguous_strides(&[1, 1, d, s]),
        );
    }

    #[test]
    fn layouts_without_a_uniform_batch_stride_are_refused() {
        // Heads and batch swapped: the batch dims do not flatten into one stride.
        let shape = [2, 3, 4, 5];
        let strides = permuted_strides(&shape, &[1, 0, 2, 3]);
        assert_eq!(
            plan(
                &shape,
                &strides,
                &[2, 3, 5, 4],
                &contiguous_strides(&[2, 3, 5, 4])
            ),
            Err(Unsupported::Strides)
        );
        assert_eq!(
            plan(
                &[2, 4, 5],
                &contiguous_strides(&[2, 4, 5]),
                &[3, 5, 4],
                &contiguous_strides(&[3, 5, 4])
            ),
            Err(Unsupported::Broadcast)
        );
        assert_eq!(
            plan(&[4, 5], &[5, 1], &[6, 4], &[4, 1]),
            Err(Unsupported::Shapes)
        );
    }
}
