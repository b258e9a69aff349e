//! CubeCL kernels for the lab-2 systems work and their burn backend extensions.
//!
//! `flash`: FlashAttention-2 forward and backward (feature `cubecl`; `wgpu` / `cuda` add the
//! concrete backends lm-core dispatches to). Without features the crate is empty, so CPU
//! builds do not compile CubeCL.

#[cfg(feature = "cubecl")]
pub mod flash;
