//! The CS336 Transformer language model, generic over any burn [`Backend`](burn::tensor::backend::Backend).
//!
//! Every layer is built from tensor ops and `Param`s (the course forbids `nn.Linear` and
//! friends); parameter paths are the course's state-dict names, so safetensors files are
//! interchangeable with a PyTorch implementation of the handout.

pub mod assets;
pub mod config;
#[cfg(feature = "ndarray")]
pub mod cpu_decode;
pub mod cpu_dot;
#[cfg(feature = "ndarray")]
pub mod cpu_linear;
pub mod error;
pub mod fsutil;
pub mod functional;
pub mod generate;
pub mod init;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod kernel_cache;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod optim;
pub mod packed;
pub mod parallel;
pub mod params;
pub mod precision;
pub mod pretrained;
pub mod provenance;
pub mod summary;

pub use config::TransformerConfig;
pub use error::{LmError, Result};
pub use model::TransformerLm;

/// Backends this build was compiled with, for tests and tools.
pub mod backends {
    #[cfg(feature = "ndarray")]
    pub type NdArray = burn::backend::NdArray<f32>;
    #[cfg(feature = "ndarray")]
    pub type NdArrayAutodiff = burn::backend::Autodiff<NdArray>;
    #[cfg(feature = "wgpu")]
    pub type Wgpu = burn::backend::Wgpu<f32, i32>;
    #[cfg(feature = "wgpu")]
    pub type WgpuAutodiff = burn::backend::Autodiff<Wgpu>;
    #[cfg(feature = "cuda")]
    pub type Cuda = burn::backend::Cuda<f32, i32>;
    #[cfg(feature = "cuda")]
    pub type CudaAutodiff = burn::backend::Autodiff<Cuda>;
    /// CUDA without burn's fusion layer: fused kernels are compiled per op graph, and a
    /// decoder's graphs change with every cache length (a compile per decode step).
    #[cfg(feature = "cuda")]
    pub type CudaUnfused = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
    #[cfg(feature = "cuda")]
    pub type CudaUnfusedAutodiff = burn::backend::Autodiff<CudaUnfused>;

    /// Whether a CUDA run uses burn's fusion layer: `LM_CUDA_FUSION=1` / `0` decide, else
    /// `default`. Training gains from fusion; generation loses (H100, 2026-12-06: 15.5 vs
    /// 55 tok/s at batch 1 on Qwen2.5-0.5B), because fused kernels are compiled per op graph
    /// and each new batch composition or cache bucket is a new graph.
    pub fn cuda_fusion(default: bool) -> bool {
        match std::env::var("LM_CUDA_FUSION").as_deref() {
            Ok("0") => false,
            Ok("1") => true,
            _ => default,
        }
    }
}
