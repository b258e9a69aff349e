use burn::module::{Module, Param};
use burn::tensor::{DType, Tensor, backend::Backend};

use super::expect_last_dim;
use crate::precision::to_dtype;

/// `y = x / sqrt(mean(x²) + eps) · weight`, computed in f32 and cast back to x's dtype.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Gain initialised to ones.
    pub fn new(d_model: usize, eps: f64, device: &B::Device) -> Self {
        Self::from_weight(Tensor::ones([d_model], device), eps)
    }

    pub fn from_weight(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let dim = self.weight.dims()[0];
        expect_last_dim("RmsNorm", "x", &dims, dim);
        // The fused kernel on GPU backends (one launch forward, two backward).
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            let rows = dims[..D - 1].iter().product();
            let flat = x.clone().reshape([rows, dim]);
            if let Some(y) = crate::kernels::rms_norm(flat, self.weight.val(), self.eps) {
                return y.reshape(dims);
            }
        }
        let in_dtype = x.dtype();
        // Squares of bf16 activations lose too much precision: normalise in f32.
        // `to_dtype`: no cast op at all when x is already f32 (the usual case).
        let x = to_dtype(x, DType::F32);
        let mean_sq = x.clone().square().mean_dim(D - 1);
        let inv_rms = mean_sq.add_scalar(self.eps).powf_scalar(-0.5);
        let gain = to_dtype(self.weight.val(), DType::F32).unsqueeze::<D>();
        to_dtype(x * inv_rms * gain, in_dtype)
    }

    /// `(x + delta, self.forward(x + delta))`: a residual connection and the norm after it,
    /// in one kernel on the GPU backends without autodiff (inference).
    pub fn add_forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        delta: Tensor<B, D>,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        match crate::kernels::add_rms_norm(x, delta, self.weight.val(), self.eps) {
            Ok(both) => both,
            Err((x, delta)) => {
                let sum = x + delta;
                (sum.clone(), self.forward(sum))
            }
        }
    }
}
