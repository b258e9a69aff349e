//! Lab 5 (alignment): SFT, expert iteration, GRPO and DPO (issue 10).

pub mod losses;

pub use lm_core;
pub mod grader;
pub mod parse;
pub mod sft_data;
