//! The crate's error type: every message names the file, record, field or model it is about.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that cannot be read as what it should be (WARC, model, config, ...).
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// Bad input that is not a file (an argument, a document, a setting).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Core(#[from] lm_core::LmError),
    #[error(transparent)]
    Basics(#[from] lm_basics::BasicsError),
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn bad_file(path: &Path, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
