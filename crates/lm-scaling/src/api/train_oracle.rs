//! Losses from real short training runs (lab 1's trainer): the request's shape and learning
//! rate on the data of a base config, trained for the request's compute times `flops_scale`
//! (a CPU cannot spend 1e13 FLOPs per query; the scale keeps the IsoFLOP structure).

use std::hash::Hasher;
use std::path::PathBuf;
use std::sync::Mutex;

use burn::tensor::backend::AutodiffBackend;
use lm_basics::train::{TrainConfig, train};

use super::config::RunConfig;
use super::oracle::LossOracle;
use crate::error::{Result, ScalingError};

pub struct TrainingOracle<B: AutodiffBackend> {
    /// Data, vocabulary, context length, optimiser betas, batch size and backend of every run.
    pub base: TrainConfig,
    /// Fraction of the requested FLOPs actually trained.
    pub flops_scale: f64,
    /// Runs longer than this many steps are refused (a guard against a mistyped scale).
    pub max_steps: u64,
    /// Each run's directory is `<work_dir>/run-<hash of the request>`.
    pub work_dir: PathBuf,
    pub device: B::Device,
    /// The trainer is not re-entrant on one device: one run at a time.
    lock: Mutex<()>,
}

impl<B: AutodiffBackend> TrainingOracle<B> {
    pub fn new(base: TrainConfig, flops_scale: f64, work_dir: PathBuf, device: B::Device) -> Self {
        Self {
            base,
            flops_scale,
            max_steps: 20_000,
            work_dir,
            device,
            lock: Mutex::new(()),
        }
    }

    /// The lab-1 config of one request: the request's shape (d_ff = 8/3 d_model rounded up
    /// to 64, SwiGLU), learning rate (cosine to a tenth, 5% warm-up) and compute.
    pub fn run_config(&self, c: &RunConfig) -> Result<TrainConfig> {
        let mut cfg = self.base.clone();
        cfg.model.d_model = c.d_model;
        cfg.model.num_layers = c.num_layers;
        cfg.model.num_heads = c.num_heads;
        cfg.model.d_ff = (8 * c.d_model / 3).div_ceil(64) * 64;
        let tokens_per_step = (cfg.train.batch_size * cfg.model.context_length) as f64;
        let steps =
            (self.flops_scale * c.train_flops as f64 / (6.0 * c.parameters()) / tokens_per_step)
                .round()
                .max(1.0) as u64;
        if steps > self.max_steps {
            return Err(ScalingError::Budget(format!(
                "{:e} FLOPs × scale {} is {steps} steps of {tokens_per_step} tokens for this model, \
                 over the limit of {}; lower the FLOP scale",
                c.train_flops as f64, self.flops_scale, self.max_steps
            )));
        }
        cfg.train.steps = steps;
        cfg.train.eval_interval = steps;
        cfg.train.checkpoint_interval = 0;
        cfg.optimizer.lr = c.learning_rate;
        cfg.optimizer.min_lr = c.learning_rate / 10.0;
        cfg.optimizer.warmup_iters = steps / 20;
        cfg.optimizer.cosine_cycle_iters = steps;
        cfg.validate()?;
        Ok(cfg)
    }
}

impl<B: AutodiffBackend> LossOracle for TrainingOracle<B>
where
    B::Device: Send + Sync,
{
    fn loss(&self, c: &RunConfig) -> Result<f64> {
        let cfg = self.run_config(c)?;
        let dir = self
            .work_dir
            .join(format!("run-{:016x}", c.hasher().finish()));
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = train::<B>(&cfg, &dir, false, &self.device, false)?;
        Ok(outcome.eval_loss.unwrap_or(outcome.last_train_loss))
    }

    fn describe(&self) -> String {
        format!(
            "real training runs ({} backend, FLOP scale {}) in {}",
            self.base.train.backend,
            self.flops_scale,
            self.work_dir.display()
        )
    }
}
