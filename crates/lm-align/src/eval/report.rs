//! What an evaluation found, per example and in total, and how it is saved.

use std::io::Write;
use std::path::Path;

use lm_core::fsutil::{AtomicFile, write_atomic};
use lm_core::generate::FinishReason;
use lm_core::{LmError, Result};
use serde::Serialize;

/// One scored response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalRecord {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub ground_truth: String,
    pub format_reward: f64,
    pub answer_reward: f64,
    pub response_tokens: usize,
    pub finish_reason: FinishReason,
}

/// Totals over the records (all 0 when there are none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub n: usize,
    /// Mean answer reward.
    pub accuracy: f64,
    /// Mean format reward.
    pub format_rate: f64,
    pub mean_response_tokens: f64,
    #[serde(skip)]
    pub records: Vec<EvalRecord>,
}

impl EvalReport {
    pub fn from_records(records: Vec<EvalRecord>) -> Self {
        let n = records.len();
        let mean = |f: &dyn Fn(&EvalRecord) -> f64| {
            if n == 0 {
                0.0
            } else {
                records.iter().map(f).sum::<f64>() / n as f64
            }
        };
        Self {
            n,
            accuracy: mean(&|r| r.answer_reward),
            format_rate: mean(&|r| r.format_reward),
            mean_response_tokens: mean(&|r| r.response_tokens as f64),
            records,
        }
    }

    /// Writes `dir/records.jsonl` (one record a line, in example order) and
    /// `dir/summary.json` (the totals), each atomically; creates `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
        let path = dir.join("records.jsonl");
        let mut file = AtomicFile::create(&path)?;
        for record in &self.records {
            serde_json::to_writer(&mut file, record).map_err(|e| LmError::io(&path, e.into()))?;
            file.write_all(b"\n").map_err(|e| LmError::io(&path, e))?;
        }
        file.commit()?;
        let summary = serde_json::to_vec_pretty(self)
            .map_err(|e| LmError::io(dir.join("summary.json"), e.into()))?;
        write_atomic(&dir.join("summary.json"), &summary)
    }
}
