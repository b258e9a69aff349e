//! Errors of the tokenizer and training code, naming the file and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BasicsError {
    // The io::Error is shown inline, not as a `source`, so `{:#}` chains don't repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not valid UTF-8 at byte {offset}")]
    NotUtf8 { path: PathBuf, offset: u64 },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("invalid argument `{name}`: {reason}")]
    Invalid { name: String, reason: String },
}

pub type Result<T, E = BasicsError> = std::result::Result<T, E>;

impl BasicsError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }

    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
