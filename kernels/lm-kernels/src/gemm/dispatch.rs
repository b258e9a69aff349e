//! cuBLASLt products for code generic over any burn backend (see [`crate::dispatch`]).

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::{F32Math, GemmBackend, available};
use crate::dispatch::{is, same_type};

type Cube = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
type Fused = burn::backend::Cuda<f32, i32>;
type Ad<B> = burn::backend::Autodiff<B>;

fn run_as<B: Backend, K: GemmBackend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
    math: F32Math,
) -> Tensor<B, D> {
    let lhs: Tensor<K, D> = same_type(lhs);
    let rhs: Tensor<K, D> = same_type(rhs);
    let out = K::gemm(
        lhs.into_primitive().tensor(),
        rhs.into_primitive().tensor(),
        math,
    );
    same_type(Tensor::<K, D>::from_primitive(TensorPrimitive::Float(out)))
}

type Runner<B, const D: usize> = fn(Tensor<B, D>, Tensor<B, D>, F32Math) -> Tensor<B, D>;

fn runner<B: Backend, const D: usize>() -> Option<Runner<B, D>> {
    if is::<B, Fused>() {
        Some(run_as::<B, Fused, D>)
    } else if is::<B, Ad<Fused>>() {
        Some(run_as::<B, Ad<Fused>, D>)
    } else if is::<B, Cube>() {
        Some(run_as::<B, Cube, D>)
    } else if is::<B, Ad<Cube>>() {
        Some(run_as::<B, Ad<Cube>, D>)
    } else {
        None
    }
}

/// `lhs · rhs` through cuBLASLt when `B` is a CUDA backend of this build, both operands have
/// one dtype among f32/bf16/f16 and the same batch dims; else the operands back, for burn's
/// matmul.
#[allow(clippy::type_complexity)]
pub fn try_matmul<B: Backend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
    math: F32Math,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    let Some(run) = runner::<B, D>() else {
        return Err((lhs, rhs));
    };
    let dtype = lhs.dtype();
    let gemm_dtype = matches!(dtype, DType::F32 | DType::BF16 | DType::F16);
    let (ls, rs) = (lhs.dims(), rhs.dims());
    let same_batch = D >= 2 && ls[..D - 2] == rs[..D - 2];
    if !(gemm_dtype && dtype == rhs.dtype() && same_batch && available()) {
        return Err((lhs, rhs));
    }
    Ok(run(lhs, rhs, math))
}
