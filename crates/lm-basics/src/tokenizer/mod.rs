//! Byte-level BPE: training ([`train_bpe`]), encoding ([`Tokenizer`]), files in GPT-2 and
//! Hugging Face formats, and parallel encoding of large files.

pub mod bpe;
pub mod bytes_unicode;
pub mod encode_file;
pub mod files;
pub mod pretokenize;
pub mod train;

pub use bpe::Tokenizer;
pub use train::{BpeModel, TrainOptions, train_bpe};
