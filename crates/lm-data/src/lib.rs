//! Lab 4 (data): the Common Crawl pipeline: extraction, filtering, deduplication (issue 8).

pub use lm_core;
