//! The precision policy: which float type the model computes in. Parameters, gradients,
//! optimizer state, the residual stream, norms, softmax and the loss stay in f32 in every
//! mode; `bf16-mixed` runs the matrix products (projections, attention, FFN, LM head) in
//! bf16, like PyTorch's `autocast(dtype=torch.bfloat16)`; `tf32` keeps f32 tensors but lets
//! the CUDA GEMMs (cuBLASLt) round their inputs to TF32, like PyTorch's `allow_tf32`.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{LmError, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Everything in f32; on CUDA the cuBLASLt GEMMs are strict IEEE f32 (burn's own CUDA
    /// matmul, `matmul = "burn"`, may still use TF32-like tensor-core math).
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// f32 tensors, TF32 tensor-core products in the CUDA GEMMs (elsewhere as `f32`).
    #[serde(rename = "tf32")]
    Tf32,
    /// bf16 matrix products over f32 master weights (cast on the fly, differentiably, so
    /// gradients arrive in f32).
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
}

impl Precision {
    /// The dtype of the matrix products.
    pub fn compute_dtype(self) -> DType {
        match self {
            Precision::F32 | Precision::Tf32 => DType::F32,
            Precision::Bf16Mixed => DType::BF16,
        }
    }

    /// An error naming the config key when `B` cannot compute in this precision on `device`
    /// (ndarray and wgpu over lavapipe have no bf16).
    pub fn check_supported<B: Backend>(self, device: &B::Device) -> Result<()> {
        let dtype = self.compute_dtype();
        if B::supports_dtype(device, dtype) {
            return Ok(());
        }
        Err(LmError::config(
            "model.precision",
            format!(
                "{self:?} needs {dtype:?} arithmetic, which the {} backend does not have on \
                 {device:?} (use a CUDA build, or precision = \"f32\")",
                B::name(device)
            ),
        ))
    }
}

/// `x` as `dtype`; no op (and no autodiff node) when it already is.
pub fn to_dtype<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}
