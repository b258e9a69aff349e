use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};

use super::expect_last_dim;
use crate::init::Initializer;
use crate::packed::PackedMatrix;
use crate::precision::to_dtype;

/// `y = x Wᵀ`, no bias; `weight` is `[d_out, d_in]` as in PyTorch.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    /// The same matrix as quantised blocks, for decoding on the CPU (see
    /// [`crate::packed`]); attached only to models loaded for inference
    /// ([`crate::pretrained::Decoder::load_with`]): it is not updated by training.
    #[module(skip)]
    pub packed: Option<Arc<PackedMatrix>>,
}

impl<B: Backend> Linear<B> {
    /// Truncated normal with σ² = 2/(d_in + d_out), cut at ±3σ (the handout's init).
    pub fn new(d_in: usize, d_out: usize, init: &mut Initializer, device: &B::Device) -> Self {
        let std = (2.0 / (d_in + d_out) as f64).sqrt();
        Self {
            weight: init.param([d_out, d_in], std, 3.0, device),
            packed: None,
        }
    }

    pub fn from_weight(weight: Tensor<B, 2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            packed: None,
        }
    }

    pub fn d_in(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Applies the map over the last dim of `x` (any number of leading dims).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        expect_last_dim("Linear", "x", &dims, self.d_in());
        let rows: usize = dims[..D - 1].iter().product();
        let mut out_dims = dims;
        out_dims[D - 1] = self.d_out();
        // One 2-D GEMM over all leading positions: x [rows, d_in] @ Wᵀ [d_in, d_out].
        let x2: Tensor<B, 2> = x.reshape([rows, self.d_in()]);
        if let Some(y) = packed_product(&x2, self.packed.as_deref()) {
            return y.reshape(out_dims);
        }
        // The product runs in x's dtype (bf16 under `bf16-mixed`); the f32 weight is cast
        // differentiably, so its gradient arrives in f32.
        let weight = to_dtype(self.weight.val(), x2.dtype());
        matmul_transposed(x2, weight).reshape(out_dims)
    }
}

/// `x Wᵀ` from `W`'s quantised blocks when there are some and the backend and row count
/// suit them (plain ndarray, a decode batch); `None` otherwise.
pub fn packed_product<B: Backend>(
    x: &Tensor<B, 2>,
    packed: Option<&PackedMatrix>,
) -> Option<Tensor<B, 2>> {
    #[cfg(feature = "ndarray")]
    if let Some(p) = packed {
        return crate::cpu_linear::try_packed_linear(x, p);
    }
    let _ = (x, packed);
    None
}

/// `x Wᵀ` for `x [m, k]`, `weight [n, k]`: on plain burn-ndarray a path without its
/// per-call weight copies (see [`crate::cpu_linear`]), else [`crate::kernels::matmul`]
/// (cuBLASLt on CUDA, reading `W` transposed in place).
pub fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "ndarray")]
    if let Some(y) = crate::cpu_linear::try_linear(&x, &weight) {
        return y;
    }
    crate::kernels::matmul(x, weight.transpose())
}
