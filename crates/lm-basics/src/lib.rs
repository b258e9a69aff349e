//! Lab 1 (basics): the byte-level BPE tokenizer and the pretraining loop (issues 3 and 4).
//! The model, layers and optimiser it trains live in `lm-core`.

pub use lm_core;
