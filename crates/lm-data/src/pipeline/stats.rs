//! Counters: documents in and dropped per stage, record errors with offsets, and sampled
//! examples of what each stage dropped.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCount {
    /// Documents that reached the stage.
    pub seen: u64,
    pub dropped: u64,
}

/// A dropped document, kept as an example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub stage: String,
    pub reason: String,
    pub url: Option<String>,
    /// The first 500 characters.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub files: u64,
    pub records: u64,
    /// Records that carried a document (HTML responses, WET conversions).
    pub documents: u64,
    pub kept: u64,
    pub kept_chars: u64,
    pub pii_masked: u64,
    /// Stages in pipeline order (a BTreeMap would sort them): name → counts.
    pub stages: Vec<(String, StageCount)>,
    /// Damaged records skipped, and the first few as "file at byte N: message".
    pub record_errors: u64,
    pub record_error_samples: Vec<String>,
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Examples seen per stage (for reservoir sampling across merges).
    #[serde(default)]
    pub examples_seen: BTreeMap<String, u64>,
}

const ERROR_SAMPLES: usize = 20;

impl Stats {
    pub fn with_stages(names: &[String]) -> Self {
        Self {
            stages: names
                .iter()
                .map(|n| (n.clone(), StageCount::default()))
                .collect(),
            ..Default::default()
        }
    }

    pub fn stage_mut(&mut self, name: &str) -> &mut StageCount {
        if let Some(i) = self.stages.iter().position(|(n, _)| n == name) {
            return &mut self.stages[i].1;
        }
        self.stages.push((name.to_string(), StageCount::default()));
        &mut self.stages.last_mut().expect("just pushed").1
    }

    pub fn record_error(&mut self, message: String) {
        self.record_errors += 1;
        if self.record_error_samples.len() < ERROR_SAMPLES {
            self.record_error_samples.push(message);
        }
    }

    /// Keeps `example` with reservoir sampling: at most `k` per stage, uniformly chosen.
    pub fn offer_example(&mut self, example: Example, k: usize, rng: &mut impl Rng) {
        let seen = self.examples_seen.entry(example.stage.clone()).or_default();
        *seen += 1;
        let n = *seen;
        let slots: Vec<usize> = (0..self.examples.len())
            .filter(|&i| self.examples[i].stage == example.stage)
            .collect();
        if slots.len() < k {
            self.examples.push(example);
        } else if k > 0 {
            let j = rng.random_range(0..n);
            if (j as usize) < k {
                self.examples[slots[j as usize]] = example;
            }
        }
    }

    /// Adds `other`'s counts (examples: concatenated, then each stage cut to `k`).
    pub fn merge(&mut self, other: &Stats, k: usize) {
        self.files += other.files;
        self.records += other.records;
        self.documents += other.documents;
        self.kept += other.kept;
        self.kept_chars += other.kept_chars;
        self.pii_masked += other.pii_masked;
        for (name, c) in &other.stages {
            let mine = self.stage_mut(name);
            mine.seen += c.seen;
            mine.dropped += c.dropped;
        }
        self.record_errors += other.record_errors;
        for s in &other.record_error_samples {
            if self.record_error_samples.len() < ERROR_SAMPLES {
                self.record_error_samples.push(s.clone());
            }
        }
        for e in &other.examples {
            let have = self.examples.iter().filter(|x| x.stage == e.stage).count();
            if have < k {
                self.examples.push(e.clone());
            }
        }
        for (stage, n) in &other.examples_seen {
            *self.examples_seen.entry(stage.clone()).or_default() += n;
        }
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} files, {} records ({} damaged, skipped), {} documents, {} kept ({:.1}%), {} characters kept, {} PII replacements\n",
            self.files,
            self.records,
            self.record_errors,
            self.documents,
            self.kept,
            100.0 * self.kept as f64 / self.documents.max(1) as f64,
            self.kept_chars,
            self.pii_masked
        );
        s.push_str(&format!(
            "{:<16} {:>10} {:>10} {:>8}\n",
            "stage", "in", "dropped", "drop %"
        ));
        for (name, c) in &self.stages {
            s.push_str(&format!(
                "{:<16} {:>10} {:>10} {:>7.1}%\n",
                name,
                c.seen,
                c.dropped,
                100.0 * c.dropped as f64 / c.seen.max(1) as f64
            ));
        }
        for e in &self.record_error_samples {
            s.push_str(&format!("damaged record: {e}\n"));
        }
        s
    }
}
