//! Lab 5 (alignment): the course's losses, the math reward, and the SFT, expert-iteration,
//! GRPO and DPO loops over any [`policy::Policy`] (issue 10).

pub mod arith_lab;
pub mod eval;
pub mod grader;
pub mod losses;
pub mod parse;
pub mod policy;
pub mod rollout;
pub mod scoring;
pub mod sft_data;
pub mod toy;
pub mod train;

pub use lm_core;
