//! Per-step metrics of an alignment run: one JSON object per line in `metrics.jsonl`, and a
//! one-line summary on stderr.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use lm_core::{LmError, Result};
use serde::Serialize;

pub struct MetricsLog {
    out: BufWriter<File>,
    path: std::path::PathBuf,
    quiet: bool,
}

impl MetricsLog {
    pub fn create(path: &Path, quiet: bool) -> Result<Self> {
        let file = File::create(path).map_err(|e| LmError::io(path, e))?;
        Ok(Self {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            quiet,
        })
    }

    /// Appends `record` (flushed at once: a crashed run keeps its log).
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line =
            serde_json::to_string(record).map_err(|e| LmError::config("metrics", e.to_string()))?;
        if !self.quiet {
            eprintln!("{line}");
        }
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| LmError::io(&self.path, e))
    }
}
