//! A run of the course's training API: the hyperparameters it accepts, their allowed ranges,
//! and the model size the API reports (non-embedding parameters, 12 · layers · d_model²).

use std::collections::BTreeMap;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ScalingError};

/// The compute budgets (FLOPs) a run may ask for, as the course's API allows.
pub const TRAIN_FLOPS_LEVELS: [u64; 16] = [
    1e13 as u64,
    3e13 as u64,
    6e13 as u64,
    1e14 as u64,
    3e14 as u64,
    6e14 as u64,
    1e15 as u64,
    3e15 as u64,
    6e15 as u64,
    1e16 as u64,
    3e16 as u64,
    6e16 as u64,
    1e17 as u64,
    3e17 as u64,
    6e17 as u64,
    1e18 as u64,
];
pub const D_MODEL_RANGE: (usize, usize) = (64, 1024);
pub const NUM_LAYERS_RANGE: (usize, usize) = (2, 24);
pub const NUM_HEADS_RANGE: (usize, usize) = (2, 16);
pub const BATCH_SIZES: [usize; 2] = [128, 256];
pub const LEARNING_RATE_RANGE: (f64, f64) = (1e-4, 1e-3);

/// One training-run request. Two requests with equal fields are the same run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub d_model: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub train_flops: u64,
}

impl RunConfig {
    /// Non-embedding parameters: 12 · layers · d_model² (attention 4 d², MLP 8 d²).
    pub fn parameters(&self) -> f64 {
        12.0 * self.num_layers as f64 * (self.d_model as f64).powi(2)
    }

    /// Training tokens under C = 6 N D.
    pub fn tokens(&self) -> f64 {
        self.train_flops as f64 / (6.0 * self.parameters())
    }

    /// A hasher that has seen the whole request: equal runs hash alike (the surface's noise
    /// seed, the training oracle's run directory).
    pub fn hasher(&self) -> rustc_hash::FxHasher {
        let mut h = rustc_hash::FxHasher::default();
        h.write(serde_json::to_string(self).unwrap_or_default().as_bytes());
        h
    }

    /// Checks every field against the API's ranges; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(ScalingError::InvalidConfig { field, reason });
        let in_range = |field, v: usize, (lo, hi): (usize, usize)| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                bad(field, format!("must be in [{lo}, {hi}], got {v}"))
            }
        };
        in_range("d_model", self.d_model, D_MODEL_RANGE)?;
        in_range("num_layers", self.num_layers, NUM_LAYERS_RANGE)?;
        in_range("num_heads", self.num_heads, NUM_HEADS_RANGE)?;
        if !self.d_model.is_multiple_of(self.num_heads) {
            return bad(
                "num_heads",
                format!(
                    "must divide d_model = {}, got {}",
                    self.d_model, self.num_heads
                ),
            );
        }
        if !BATCH_SIZES.contains(&self.batch_size) {
            return bad(
                "batch_size",
                format!("must be one of {BATCH_SIZES:?}, got {}", self.batch_size),
            );
        }
        let (lo, hi) = LEARNING_RATE_RANGE;
        if !(lo..=hi).contains(&self.learning_rate) {
            return bad(
                "learning_rate",
                format!("must be in [{lo:e}, {hi:e}], got {}", self.learning_rate),
            );
        }
        if !TRAIN_FLOPS_LEVELS.contains(&self.train_flops) {
            return bad(
                "train_flops",
                format!(
                    "must be one of 1e13, 3e13, 6e13, …, 6e17, 1e18, got {:e}",
                    self.train_flops as f64
                ),
            );
        }
        Ok(())
    }

    /// The request as query parameters (the API is queried with GET).
    pub fn query_pairs(&self) -> [(&'static str, String); 6] {
        [
            ("d_model", self.d_model.to_string()),
            ("num_layers", self.num_layers.to_string()),
            ("num_heads", self.num_heads.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("learning_rate", self.learning_rate.to_string()),
            ("train_flops", self.train_flops.to_string()),
        ]
    }

    /// Parses query parameters; errors name the missing or malformed field.
    pub fn from_query(q: &BTreeMap<String, String>) -> Result<Self> {
        fn field<T: std::str::FromStr>(
            q: &BTreeMap<String, String>,
            name: &'static str,
        ) -> Result<T> {
            let raw = q.get(name).ok_or_else(|| ScalingError::InvalidConfig {
                field: name,
                reason: "is missing".into(),
            })?;
            raw.trim().parse().map_err(|_| ScalingError::InvalidConfig {
                field: name,
                reason: format!("is not a valid number: {raw:?}"),
            })
        }
        // The API documents train_flops as an integer; accept 1e+17 spellings too.
        let flops: f64 = field(q, "train_flops")?;
        if flops.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&flops) {
            return Err(ScalingError::InvalidConfig {
                field: "train_flops",
                reason: format!("must be a whole number of FLOPs, got {flops}"),
            });
        }
        Ok(Self {
            d_model: field(q, "d_model")?,
            num_layers: field(q, "num_layers")?,
            num_heads: field(q, "num_heads")?,
            batch_size: field(q, "batch_size")?,
            learning_rate: field(q, "learning_rate")?,
            train_flops: flops as u64,
        })
    }
}

/// A finished run as the API lists it: the request and its final loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub config: RunConfig,
    pub loss: f64,
}

impl RunRecord {
    /// The run as a scaling-law data point.
    pub fn to_run(&self) -> crate::runs::Run {
        crate::runs::Run::new(
            self.config.parameters(),
            self.config.train_flops as f64,
            self.loss,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn example() -> RunConfig {
        RunConfig {
            d_model: 512,
            num_layers: 8,
            num_heads: 8,
            batch_size: 128,
            learning_rate: 6e-4,
            train_flops: 1e15 as u64,
        }
    }

    #[test]
    fn validation_names_the_field_and_queries_round_trip() {
        let ok = example();
        ok.validate().unwrap();
        assert_eq!(ok.parameters(), 12.0 * 8.0 * 512.0 * 512.0);
        let cases: [(&str, RunConfig); 5] = [
            ("d_model", RunConfig { d_model: 32, ..ok }),
            ("num_heads", RunConfig { num_heads: 7, ..ok }),
            (
                "batch_size",
                RunConfig {
                    batch_size: 64,
                    ..ok
                },
            ),
            (
                "learning_rate",
                RunConfig {
                    learning_rate: 0.1,
                    ..ok
                },
            ),
            (
                "train_flops",
                RunConfig {
                    train_flops: 2e15 as u64,
                    ..ok
                },
            ),
        ];
        for (field, cfg) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let q: BTreeMap<String, String> = ok
            .query_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(RunConfig::from_query(&q).unwrap(), ok);
        let mut sci = q.clone();
        sci.insert("train_flops".into(), "1e15".into());
        assert_eq!(RunConfig::from_query(&sci).unwrap(), ok);
        sci.remove("num_layers");
        let e = RunConfig::from_query(&sci).unwrap_err().to_string();
        assert!(e.contains("num_layers") && e.contains("missing"), "{e}");
    }
}
