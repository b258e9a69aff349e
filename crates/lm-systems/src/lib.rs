//! Lab 2 (systems): the profiling harness over the course's model sizes (`profile`, run by
//! `cargo xtask lab2`) and its report (`report`); FlashAttention-2 itself lives in
//! `kernels/lm-kernels` and is used through lm-core's attention. `dist`: data-parallel
//! training (DDP variants, overlapped DDP, ZeRO-1, FSDP) over a `Communicator` (issue 6).

pub mod dist;
pub mod profile;
pub mod report;

pub use lm_core;
