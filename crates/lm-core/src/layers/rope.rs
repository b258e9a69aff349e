use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::expect_last_dim;
use crate::precision::to_dtype;

/// Rotary position embedding on interleaved pairs `(x[2k], x[2k+1])`, angle
/// `pos · θ^(−2k/d_k)`, with cos/sin tables precomputed for `max_seq_len` positions.
///
/// Written as `y = x ⊙ cos + swap_pairs(x) ⊙ sin_signed`, which keeps the input's rank
/// (burn's ranks are compile-time constants, so a `[..., d/2, 2]` view would not be generic).
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    /// `[max_seq_len, d_k]`: cos θ_k repeated for both members of pair k.
    cos: Tensor<B, 2>,
    /// `[max_seq_len, d_k]`: −sin θ_k at 2k, +sin θ_k at 2k+1.
    sin_signed: Tensor<B, 2>,
    /// `[d_k]`: 1, 0, 3, 2, … (the partner of each feature in its pair).
    pair_swap: Tensor<B, 1, Int>,
    pub theta: f64,
    pub d_k: usize,
    pub max_seq_len: usize,
}

impl<B: Backend> Rope<B> {
    /// Panics if `d_k` is odd; configs are validated before layers are built.
    pub fn new(theta: f64, d_k: usize, max_seq_len: usize, device: &B::Device) -> Self {
        assert!(d_k.is_multiple_of(2), "Rope: d_k must be even, got {d_k}");
        let mut cos = Vec::with_capacity(max_seq_len * d_k);
        let mut sin_signed = Vec::with_capacity(max_seq_len * d_k);
        for pos in 0..max_seq_len {
            for k in 0..d_k / 2 {
                // Angles in f64: at position ~2k with θ = 5e5 an f32 angle is off by ~1e-4 rad.
                let angle = pos as f64 * theta.powf(-2.0 * k as f64 / d_k as f64);
                let (s, c) = angle.sin_cos();
                cos.extend([c as f32, c as f32]);
                sin_signed.extend([-s as f32, s as f32]);
            }
        }
        let pair_swap: Vec<i64> = (0..d_k as i64).map(|i| i ^ 1).collect();
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [max_seq_len, d_k]), device),
            sin_signed: Tensor::from_data(TensorData::new(sin_signed, [max_seq_len, d_k]), device),
            pair_swap: Tensor::from_data(TensorData::new(pair_swap, [d_k]), device),
            theta,
            d_k,
            max_seq_len,
        }
    }

    /// Rotates `x [..., seq, d_k]` by `positions`, whose shape broadcasts (NumPy rules, right
    /// aligned) against x's shape without its last dim: `[seq]`, `[batch, seq]`,
    /// `[batch, 1, seq]` for x `[batch, heads, seq, d_k]`, …
    pub fn forward<const D: usize, const DP: usize>(
        &self,
        x: Tensor<B, D>,
        positions: Tensor<B, DP, Int>,
    ) -> Tensor<B, D> {
        let x_dims = x.dims();
        expect_last_dim("Rope", "x", &x_dims, self.d_k);
        let pos_dims = positions.dims();
        assert!(
            DP < D && broadcasts(&pos_dims, &x_dims[..D - 1]),
            "Rope: positions shape {pos_dims:?} does not broadcast against x {x_dims:?} \
             without its last dim"
        );
        // Table rows for every position, shaped [1.., pos dims.., d_k] to broadcast over x.
        let mut table_dims = [1usize; D];
        table_dims[D - 1 - DP..D - 1].copy_from_slice(&pos_dims);
        table_dims[D - 1] = self.d_k;
        let flat: Tensor<B, 1, Int> = positions.reshape([pos_dims.iter().product::<usize>()]);
        let cos: Tensor<B, D> = self.cos.clone().select(0, flat.clone()).reshape(table_dims);
        let sin: Tensor<B, D> = self.sin_signed.clone().select(0, flat).reshape(table_dims);
        let (cos, sin) = (to_dtype(cos, x.dtype()), to_dtype(sin, x.dtype()));
        let swapped = x.clone().select(D - 1, self.pair_swap.clone());
        x * cos + swapped * sin
    }
}

/// Whether `small` broadcasts to `big` when right-aligned (each dim equal or 1).
fn broadcasts(small: &[usize], big: &[usize]) -> bool {
    small.len() <= big.len()
        && small
            .iter()
            .rev()
            .zip(big.iter().rev())
            .all(|(&s, &b)| s == b || s == 1)
}
