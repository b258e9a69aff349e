//! Training runs (one final loss per model size and compute budget) and how they are read:
//! the course's `isoflops_curves.json` layout, or a CSV with the same column names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ScalingError};

/// One finished training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Model size N (the course counts non-embedding parameters).
    pub parameters: f64,
    /// Training compute C in FLOPs.
    pub compute_budget: f64,
    pub final_loss: f64,
    /// Training tokens D; when absent, D = C / (6 N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<f64>,
}

impl Run {
    pub fn new(parameters: f64, compute_budget: f64, final_loss: f64) -> Self {
        Self {
            parameters,
            compute_budget,
            final_loss,
            tokens: None,
        }
    }

    /// D, from the record or from C ≈ 6 N D.
    pub fn tokens(&self) -> f64 {
        self.tokens
            .unwrap_or(self.compute_budget / (6.0 * self.parameters))
    }

    fn check(&self, what: &str) -> std::result::Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{what}: `{name}` must be a positive number, got {v}"
                ))
            }
        };
        positive("parameters", self.parameters)?;
        positive("compute_budget", self.compute_budget)?;
        positive("final_loss", self.final_loss)?;
        if let Some(d) = self.tokens {
            positive("tokens", d)?;
        }
        Ok(())
    }
}

/// Reads runs from `path`: a JSON list of `{parameters, compute_budget, final_loss[, tokens]}`
/// (the course's format; other keys are ignored), or, for a `.csv` file, a header row with
/// those column names. Every run is validated; errors name the file and the run.
pub fn load_runs(path: &Path) -> Result<Vec<Run>> {
    let text = std::fs::read_to_string(path).map_err(|e| ScalingError::io(path, e))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let runs = if is_csv {
        parse_csv(&text).map_err(|e| ScalingError::bad_file(path, e))?
    } else {
        serde_json::from_str::<Vec<Run>>(&text)
            .map_err(|e| ScalingError::bad_file(path, format!("not a JSON list of runs: {e}")))?
    };
    validate(&runs).map_err(|e| ScalingError::bad_file(path, e))?;
    Ok(runs)
}

/// Checks every run and that there is at least one.
pub fn validate(runs: &[Run]) -> std::result::Result<(), String> {
    if runs.is_empty() {
        return Err("no runs".into());
    }
    runs.iter()
        .enumerate()
        .try_for_each(|(i, r)| r.check(&format!("run {i}")))
}

fn parse_csv(text: &str) -> std::result::Result<Vec<Run>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    reader
        .deserialize::<Run>()
        .enumerate()
        .map(|(i, row)| row.map_err(|e| format!("CSV row {}: {e}", i + 2)))
        .collect()
}

/// Runs grouped by compute budget (exact equality, as the handout groups them), budgets
/// ascending; each group keeps input order.
pub fn by_budget(runs: &[Run]) -> Vec<(f64, Vec<Run>)> {
    let mut groups: BTreeMap<u64, Vec<Run>> = BTreeMap::new();
    for r in runs {
        // Positive finite f64s order like their bit patterns.
        groups
            .entry(r.compute_budget.to_bits())
            .or_default()
            .push(*r);
    }
    groups
        .into_iter()
        .map(|(bits, rs)| (f64::from_bits(bits), rs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_read_alike_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("runs.csv");
        std::fs::write(
            &csv,
            "parameters,compute_budget,final_loss\n1e6,6e15,4.5\n2e6, 6e15 ,4.2\n",
        )
        .unwrap();
        let json = dir.path().join("runs.json");
        std::fs::write(
            &json,
            r#"[{"parameters":1e6,"compute_budget":6e15,"final_loss":4.5,"note":"x"},
                {"parameters":2e6,"compute_budget":6e15,"final_loss":4.2}]"#,
        )
        .unwrap();
        let a = load_runs(&csv).unwrap();
        assert_eq!(a, load_runs(&json).unwrap());
        assert_eq!(a[1].tokens(), 6e15 / 12e6);

        std::fs::write(&csv, "parameters,compute_budget,final_loss\n1e6,6e15,-1\n").unwrap();
        let e = load_runs(&csv).unwrap_err().to_string();
        assert!(
            e.contains("runs.csv") && e.contains("run 0") && e.contains("final_loss"),
            "{e}"
        );
        std::fs::write(&csv, "parameters,final_loss\n1e6,3\n").unwrap();
        let e = load_runs(&csv).unwrap_err().to_string();
        assert!(
            e.contains("CSV row 2") && e.contains("compute_budget"),
            "{e}"
        );
    }

    #[test]
    fn groups_by_exact_budget_in_ascending_order() {
        let runs = [
            Run::new(3.0, 1e19, 2.0),
            Run::new(1.0, 6e18, 3.0),
            Run::new(2.0, 1e19, 1.0),
        ];
        let g = by_budget(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, 6e18);
        assert_eq!(
            g[1].1.iter().map(|r| r.parameters).collect::<Vec<_>>(),
            [3.0, 2.0]
        );
    }
}
