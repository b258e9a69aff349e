//! Lab 1 (basics): the byte-level BPE tokenizer (training and encoding) and, with issue 4, the
//! pretraining loop. The model, layers and optimiser live in `lm-core`.

pub mod data;
pub mod error;
pub mod stories;
pub mod tokenizer;
pub mod train;

pub use error::{BasicsError, Result};
pub use lm_core;
pub use tokenizer::{Tokenizer, TrainOptions, train_bpe};
