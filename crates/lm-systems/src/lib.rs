//! Lab 2 (systems): FlashAttention-2 as a burn op over the CubeCL kernels in `kernels/`,
//! profiling, and distributed training over NCCL (issues 5 and 6).

pub use lm_core;
