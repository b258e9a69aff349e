//! Matrix products through cuBLASLt on burn's CUDA backend.
//!
//! burn's own CUDA matmul (CubeCL) reaches about an eighth of cuBLAS's bf16 rate on an
//! H100/H200 and autotunes every new shape; cuBLASLt is NVIDIA's library, loaded at run time
//! like the rest of CUDA.
//!
//! - [`layout`]: a row-major (batched, possibly transposed-view) product as the column-major
//!   problem cuBLASLt solves, with no copies for transposes (every build; tested on the CPU).
//! - `cublaslt` (feature `cuda`): handle, stream, workspace and cached plans per device.
//! - `backend` (feature `cuda`): the [`GemmBackend`] extension for the CUDA backend, for
//!   `Fusion<_>` over it and `Autodiff<_>` (backward: two more products).
//! - `ordering` (feature `cuda`): our stream ordered with cubecl's private one through flags
//!   in device memory (no host round trip per product).
//! - `dispatch` (feature `cuda`): [`try_matmul`] for code generic over any backend.
//! - `host_time` (feature `cuda`): where a product's host time goes (`LM_CUBLASLT_PROFILE=1`).

pub mod layout;

#[cfg(feature = "cuda")]
mod backend;
#[cfg(feature = "cuda")]
mod cublaslt;
#[cfg(feature = "cuda")]
mod dispatch;
#[cfg(feature = "cuda")]
mod host_time;
#[cfg(feature = "cuda")]
mod ordering;

#[cfg(feature = "cuda")]
pub use backend::GemmBackend;
#[cfg(feature = "cuda")]
pub use cublaslt::{F32Math, available};
#[cfg(feature = "cuda")]
pub use dispatch::try_matmul;
