//! The crate's error type: every message names the file, field or run it is about.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScalingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Fit(String),
    #[error("invalid run config: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("budget: {0}")]
    Budget(String),
    #[error("training API: {0}")]
    Api(String),
    #[error(transparent)]
    Core(#[from] lm_core::LmError),
    #[error(transparent)]
    Basics(#[from] lm_basics::BasicsError),
}

impl ScalingError {
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
}

pub type Result<T> = std::result::Result<T, ScalingError>;
