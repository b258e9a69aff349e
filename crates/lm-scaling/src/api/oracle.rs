//! Where the local training API's losses come from: a synthetic loss surface, or (in
//! `train_oracle.rs`) real short training runs.

use std::hash::Hasher;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use crate::chinchilla::LossSurface;
use crate::error::Result;

/// Where the server's losses come from.
pub trait LossOracle: Send + Sync + 'static {
    /// The final loss of a (validated) run; may take long (real training).
    fn loss(&self, config: &RunConfig) -> Result<f64>;
    fn describe(&self) -> String;
}

/// Losses from `L(N, D) = E + A/N^α + B/D^β`, times a learning-rate penalty
/// `1 + lr_penalty · ln²(lr / lr_opt)`, times `1 + noise · z` with z ~ N(0, 1) drawn from a
/// seed and the run (the same run always gets the same loss).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceOracle {
    pub surface: LossSurface,
    pub noise: f64,
    pub lr_opt: f64,
    pub lr_penalty: f64,
    pub seed: u64,
}

impl Default for SurfaceOracle {
    /// Hoffmann et al.'s fitted surface, 0.5% noise, a mild learning-rate optimum at 6e-4.
    fn default() -> Self {
        Self {
            surface: LossSurface {
                e: 1.69,
                a: 406.4,
                b: 410.7,
                alpha: 0.34,
                beta: 0.28,
            },
            noise: 0.005,
            lr_opt: 6e-4,
            lr_penalty: 0.01,
            seed: 0,
        }
    }
}

impl LossOracle for SurfaceOracle {
    fn loss(&self, c: &RunConfig) -> Result<f64> {
        let mut h = c.hasher();
        h.write_u64(self.seed);
        let z: f64 = StandardNormal.sample(&mut ChaCha8Rng::seed_from_u64(h.finish()));
        let lr = (c.learning_rate / self.lr_opt).ln();
        Ok(self.surface.loss(c.parameters(), c.tokens())
            * (1.0 + self.lr_penalty * lr * lr)
            * (1.0 + self.noise * z))
    }

    fn describe(&self) -> String {
        let s = self.surface;
        format!(
            "loss surface {} + {}/N^{} + {}/D^{}, noise {}, seed {}",
            s.e, s.a, s.alpha, s.b, s.beta, self.noise, self.seed
        )
    }
}
