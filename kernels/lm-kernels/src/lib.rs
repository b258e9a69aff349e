//! CubeCL kernels for the lab-2 systems work and their burn backend extensions.
//!
//! `adamw`: the AdamW step over flat buffers in one kernel.
//! `decode`: the generation engine's decode step (cache write, one-token attention).
//! `cross_entropy`: fused cross-entropy (forward and backward) over the vocabulary.
//! `rms_norm`: fused RMSNorm (forward and backward).
//! `inner`: many small tensor ops as one operation of burn's fusion stream (the optimizer step).
//! `memory`: device memory in use and reserved, for the profiling harness.
//! `gemm`: matrix products through cuBLASLt on the CUDA backend (feature `cuda`; the
//! layout arithmetic is in every build).
//! `flash`: FlashAttention-2 forward and backward (feature `cubecl`; `wgpu` / `cuda` add the
//! concrete backends lm-core dispatches to). Without features the crate is empty, so CPU
//! builds do not compile CubeCL.

/// A fingerprint of this crate's kernel sources and the locked dependency versions
/// (build.rs): kernel caches are kept per fingerprint, because CubeCL keys a cached kernel
/// by its name and compile-time arguments, not by its source.
pub const SOURCE_FINGERPRINT: &str = env!("LM_KERNELS_FINGERPRINT");

#[cfg(feature = "cubecl")]
pub mod adamw;
#[cfg(feature = "cubecl")]
pub mod cross_entropy;
#[cfg(feature = "cubecl")]
pub mod decode;
pub mod decode_inputs;
#[cfg(feature = "cubecl")]
pub mod dispatch;
#[cfg(feature = "cubecl")]
pub mod flash;
#[cfg(feature = "cubecl")]
mod fusion_op;
pub mod gemm;
pub mod inner;
#[cfg(feature = "cubecl")]
pub mod memory;
#[cfg(feature = "cubecl")]
mod reduce;
#[cfg(feature = "cubecl")]
pub mod rms_norm;
