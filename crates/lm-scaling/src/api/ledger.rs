//! The client's persistent record of every query and what it cost, one JSON line each, so a
//! budget is never exceeded across sessions and no run is paid for twice.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use crate::error::{Result, ScalingError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub config: RunConfig,
    /// The final loss, or `None` when the query failed.
    pub loss: Option<f64>,
    /// FLOPs charged against the budget: 0 for failures and for runs the server already had;
    /// a job is charged when submitted and refunded (negative) if it fails.
    pub flops_charged: f64,
    /// The server's job id, for runs submitted as jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<usize>,
    /// What the server reported as used after the query, when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_flops_used: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LedgerEntry {
    /// An entry for `config` stamped now: nothing charged, no loss, no error (callers set
    /// what happened with struct-update syntax).
    pub fn now(config: RunConfig) -> Self {
        Self {
            time: now_secs(),
            config,
            loss: None,
            flops_charged: 0.0,
            job_id: None,
            server_flops_used: None,
            error: None,
        }
    }
}

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    budget: f64,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// Opens (or starts) the ledger at `path` with a total budget in FLOPs.
    pub fn open(path: &Path, budget: f64) -> Result<Self> {
        let mut entries = Vec::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                    let line = line.map_err(|e| ScalingError::io(path, e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let entry = serde_json::from_str(&line).map_err(|e| {
                        ScalingError::bad_file(path, format!("line {}: {e}", i + 1))
                    })?;
                    entries.push(entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ScalingError::io(path, e)),
        }
        Ok(Self {
            path: path.to_path_buf(),
            budget,
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn budget(&self) -> f64 {
        self.budget
    }

    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// FLOPs spent so far.
    pub fn used(&self) -> f64 {
        self.entries.iter().map(|e| e.flops_charged).sum()
    }

    /// The loss of an earlier successful query of the same run.
    pub fn known_loss(&self, config: &RunConfig) -> Option<f64> {
        self.entries
            .iter()
            .find(|e| e.config == *config && e.loss.is_some())
            .and_then(|e| e.loss)
    }

    /// Net FLOPs charged for job `id` (positive while it is paid for, 0 once refunded).
    pub fn job_charge(&self, id: usize) -> f64 {
        self.entries
            .iter()
            .filter(|e| e.job_id == Some(id))
            .map(|e| e.flops_charged)
            .sum()
    }

    /// Fails, before anything is sent, when `config` would take the total over the budget.
    pub fn check_affordable(&self, config: &RunConfig) -> Result<()> {
        let after = self.used() + config.train_flops as f64;
        if after > self.budget {
            return Err(ScalingError::Budget(format!(
                "a run of {:e} FLOPs would bring the total to {after:e}, over the budget of \
                 {:e} ({:e} used; ledger {})",
                config.train_flops as f64,
                self.budget,
                self.used(),
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Appends `entry` as one line and syncs it to disk before returning.
    pub fn record(&mut self, entry: LedgerEntry) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ScalingError::io(dir, e))?;
        }
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| ScalingError::bad_file(&self.path, e.to_string()))?;
        line.push('\n');
        let io = |e| ScalingError::io(&self.path, e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // One write of the whole line: a crash leaves at most a torn last line.
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        self.entries.push(entry);
        Ok(())
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
