//! The lab's toy task: generated arithmetic word problems in the r1_zero format and a
//! character tokenizer, small enough to pretrain, SFT and GRPO a tiny LM on a CPU.

pub mod char_codec;
pub mod format;
pub mod problems;

pub use char_codec::CharCodec;
pub use format::{R1_ZERO_COMPACT, format_response, pretraining_documents};
pub use problems::{ArithmeticSpec, Problem, generate_problems, split_problems};
