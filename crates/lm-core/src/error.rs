//! One error type for everything lm-core can reject: configs, shapes, files.

use std::path::PathBuf;

/// What went wrong, naming the field, tensor or file involved.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// A configuration value that cannot work (e.g. `d_model` not divisible by `num_heads`).
    #[error("invalid config: `{field}` {reason}")]
    Config { field: String, reason: String },

    /// A tensor whose shape does not fit where it is used.
    #[error("shape mismatch for `{tensor}`: expected {expected}, got {got:?}")]
    Shape {
        tensor: String,
        expected: String,
        got: Vec<usize>,
    },

    /// A kernel refused its inputs (the message names the tensor or size).
    #[error("{0}")]
    Kernel(String),

    /// A tensor stored with a dtype we cannot use there.
    #[error("unsupported dtype for `{tensor}`: {dtype} ({reason})")]
    Dtype {
        tensor: String,
        dtype: String,
        reason: String,
    },

    /// A tensor a file should hold but does not.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor { file: PathBuf, tensor: String },

    /// A file that exists but cannot be parsed.
    #[error("{file}: {reason}")]
    BadFile { file: PathBuf, reason: String },

    // The io::Error is shown inline, not as a `source`, so `{:#}` chains don't repeat it.
    #[error("{file}: {error}")]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
}

pub type Result<T, E = LmError> = std::result::Result<T, E>;

impl LmError {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn shape(tensor: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        Self::Shape {
            tensor: tensor.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            file: file.into(),
            error: source,
        }
    }
}
