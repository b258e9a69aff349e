//! Lab 3 (scaling laws): IsoFLOP and Chinchilla fits, the training-API client (issue 7).

pub use lm_core;
