use burn::module::Module;
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use super::expect_last_dim;
use crate::precision::to_dtype;

/// Which features RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(x[2k], x[2k+1])`: the CS336 handout (and GGUF's stored Llama rows).
    Interleaved,
    /// Pairs `(x[k], x[k + d/2])`: Hugging Face's `rotate_half` ("NeoX") form.
    HalfSplit,
}

/// Rotary position embedding: pair `k` of each head turns by `pos · inv_freq[k]`, with
/// cos/sin tables precomputed for `max_seq_len` positions.
///
/// Written as `y = x ⊙ cos + partner(x) ⊙ sin_signed`, which keeps the input's rank
/// (burn's ranks are compile-time constants, so a `[..., d/2, 2]` view would not be generic).
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    /// `[max_seq_len, d_k]`: cos of each feature's pair angle.
    cos: Tensor<B, 2>,
    /// `[max_seq_len, d_k]`: −sin for a pair's first member, +sin for its second.
    sin_signed: Tensor<B, 2>,
    /// `[d_k]`: the partner of each feature in its pair.
    partner: Tensor<B, 1, Int>,
    pub theta: f64,
    pub d_k: usize,
    pub max_seq_len: usize,
}

impl<B: Backend> Rope<B> {
    /// The handout's RoPE: interleaved pairs, `inv_freq[k] = θ^(−2k/d_k)`.
    ///
    /// Panics if `d_k` is odd; configs are validated before layers are built.
    pub fn new(theta: f64, d_k: usize, max_seq_len: usize, device: &B::Device) -> Self {
        assert!(d_k.is_multiple_of(2), "Rope: d_k must be even, got {d_k}");
        let inv_freq = rope_inv_freq(theta, d_k);
        Self::from_inv_freq(
            &inv_freq,
            RopeStyle::Interleaved,
            theta,
            max_seq_len,
            device,
        )
    }

    /// RoPE with explicit per-pair frequencies (`d_k = 2 · inv_freq.len()`), e.g. Llama 3's
    /// rescaled ones; `theta` is kept for reference only.
    pub fn from_inv_freq(
        inv_freq: &[f64],
        style: RopeStyle,
        theta: f64,
        max_seq_len: usize,
        device: &B::Device,
    ) -> Self {
        let half = inv_freq.len();
        let d_k = 2 * half;
        // Feature index of pair k's first and second member.
        let members = |k: usize| match style {
            RopeStyle::Interleaved => (2 * k, 2 * k + 1),
            RopeStyle::HalfSplit => (k, k + half),
        };
        let mut cos = vec![0f32; max_seq_len * d_k];
        let mut sin_signed = vec![0f32; max_seq_len * d_k];
        for pos in 0..max_seq_len {
            let row = pos * d_k;
            for (k, &f) in inv_freq.iter().enumerate() {
                // Angles in f64: at position ~2k with θ = 5e5 an f32 angle is off by ~1e-4 rad.
                let (s, c) = (pos as f64 * f).sin_cos();
                let (a, b) = members(k);
                cos[row + a] = c as f32;
                cos[row + b] = c as f32;
                sin_signed[row + a] = -s as f32;
                sin_signed[row + b] = s as f32;
            }
        }
        let mut partner = vec![0i64; d_k];
        for k in 0..half {
            let (a, b) = members(k);
            partner[a] = b as i64;
            partner[b] = a as i64;
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [max_seq_len, d_k]), device),
            sin_signed: Tensor::from_data(TensorData::new(sin_signed, [max_seq_len, d_k]), device),
            partner: Tensor::from_data(TensorData::new(partner, [d_k]), device),
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
        rotate(x, cos, sin, &self.partner)
    }

    /// The cos/sin rows of `positions [rows, T]`, gathered once and cast to `dtype`, for
    /// rotating every layer's q and k of one forward pass (see [`RopeTables::apply`]).
    pub fn tables(&self, positions: Tensor<B, 2, Int>, dtype: DType) -> RopeTables<B> {
        let [rows, t] = positions.dims();
        let flat: Tensor<B, 1, Int> = positions.reshape([rows * t]);
        let table = |full: &Tensor<B, 2>| -> Tensor<B, 4> {
            let rows_of: Tensor<B, 2> = full.clone().select(0, flat.clone());
            to_dtype(rows_of.reshape([rows, t, 1, self.d_k]), dtype)
        };
        RopeTables {
            cos: table(&self.cos),
            sin_signed: table(&self.sin_signed),
            partner: self.partner.clone(),
        }
    }
}

/// [`Rope`]'s tables at one call's positions, shaped `[rows, T, 1, d_k]` to broadcast over
/// the heads of `[rows, T, heads, d_k]` activations.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    cos: Tensor<B, 4>,
    sin_signed: Tensor<B, 4>,
    partner: Tensor<B, 1, Int>,
}

impl<B: Backend> RopeTables<B> {
    /// Rotates `x [rows, T, heads, d_k]` (any number of heads) by the tables' positions.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [rows, t, _, d_k] = self.cos.dims();
        let x_dims = x.dims();
        assert!(
            x_dims[0] == rows && x_dims[1] == t && x_dims[3] == d_k,
            "RopeTables: x has shape {x_dims:?}, expected [{rows}, {t}, heads, {d_k}]"
        );
        rotate(x, self.cos.clone(), self.sin_signed.clone(), &self.partner)
    }

    /// For a call of one token per row: the tables as `[rows, d_k]` and the partner of each
    /// feature, for kernels that rotate by themselves; `None` for longer calls.
    pub fn one_token_rows(&self) -> Option<RopeRows<B>> {
        let [rows, t, _, d_k] = self.cos.dims();
        (t == 1).then(|| RopeRows {
            cos: self.cos.clone().reshape([rows, d_k]),
            sin_signed: self.sin_signed.clone().reshape([rows, d_k]),
            partner: self.partner.clone(),
        })
    }
}

/// [`RopeTables`] of one token per row: `y = x ⊙ cos + x[partner] ⊙ sin_signed` per row.
#[derive(Debug, Clone)]
pub struct RopeRows<B: Backend> {
    /// `[rows, d_k]`.
    pub cos: Tensor<B, 2>,
    /// `[rows, d_k]`.
    pub sin_signed: Tensor<B, 2>,
    /// `[d_k]`: the feature each one is rotated with.
    pub partner: Tensor<B, 1, Int>,
}

/// `x ⊙ cos + partner(x) ⊙ sin_signed`, the tables already broadcastable to `x`.
fn rotate<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    cos: Tensor<B, D>,
    sin_signed: Tensor<B, D>,
    partner: &Tensor<B, 1, Int>,
) -> Tensor<B, D> {
    let swapped = x.clone().select(D - 1, partner.clone());
    x * cos + swapped * sin_signed
}

/// The standard frequencies `inv_freq[k] = θ^(−2k/d_k)` for `k < d_k/2`.
pub fn rope_inv_freq(theta: f64, d_k: usize) -> Vec<f64> {
    (0..d_k / 2)
        .map(|k| theta.powf(-2.0 * k as f64 / d_k as f64))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::NdArray<f32>;

    #[test]
    fn tables_rotate_exactly_as_forward() {
        let dev = Default::default();
        let rope = Rope::<B>::from_inv_freq(&[1.0, 0.1], RopeStyle::HalfSplit, 1e4, 16, &dev);
        let (rows, t, heads, d) = (2, 3, 5, 4);
        let x = Tensor::<B, 4>::from_data(
            TensorData::new(
                (0..rows * t * heads * d)
                    .map(|i| (i as f32 * 0.37).sin())
                    .collect(),
                [rows, t, heads, d],
            ),
            &dev,
        );
        let positions = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![0i64, 4, 9, 2, 3, 15], [2, 3]),
            &dev,
        );
        let want = rope.forward(x.clone(), positions.clone().reshape([rows, t, 1]));
        let got = rope.tables(positions, DType::F32).apply(x);
        assert_eq!(got.into_data(), want.into_data());
    }
}
