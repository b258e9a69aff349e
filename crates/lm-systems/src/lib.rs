//! Lab 2 (systems): the profiling harness over the course's model sizes (`profile`, run by
//! `cargo xtask lab2`) and its report (`report`); FlashAttention-2 itself lives in
//! `kernels/lm-kernels` and is used through lm-core's attention. Distributed training over
//! NCCL is issue 6.

pub mod profile;
pub mod report;

pub use lm_core;
