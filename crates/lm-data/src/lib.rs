//! Lab 4 (data): the Common Crawl pipeline — WARC/WET reading, HTML → text, language ID and
//! classifiers (fastText format), PII masking, Gopher quality rules, exact and MinHash
//! deduplication, tokenization.

pub mod dedup;
pub mod error;
pub mod fasttext;
pub mod gopher;
pub mod html;
pub mod pii;
pub mod pipeline;
pub mod tokenize;
pub mod warc;

pub use error::{DataError, Result};
pub use lm_core;
