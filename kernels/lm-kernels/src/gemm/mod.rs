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
//! - `dispatch` (feature `cuda`): [`try_matmul`] for code generic over any backend.
//!
//! cubecl-cuda 0.10 keeps its CUDA stream private, so each product synchronises through the
//! host: wait for cubecl's stream (the inputs), run on our stream, wait for it. That costs
//! tens of microseconds a product and serialises the GPU with the CPU (see docs/PERF.md).
//! Ordering the two streams on the device instead (a flag raised by a one-thread CubeCL
//! kernel, `cuStreamWaitValue32` on ours) was tried on an H100: the driver refuses stream
//! memory operations on cubecl's pool memory (`CUDA_ERROR_INVALID_VALUE`).

pub mod layout;

#[cfg(feature = "cuda")]
mod backend;
#[cfg(feature = "cuda")]
mod cublaslt;
#[cfg(feature = "cuda")]
mod dispatch;

#[cfg(feature = "cuda")]
pub use backend::GemmBackend;
#[cfg(feature = "cuda")]
pub use cublaslt::{F32Math, available};
#[cfg(feature = "cuda")]
pub use dispatch::try_matmul;
