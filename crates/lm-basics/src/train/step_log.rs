//! Per-step loss and gradient norm, kept on the device and read back in batches.
//!
//! A GPU runs ahead of the host until something is read back; reading the loss every step
//! stalls the queue once per step. The trainer pushes each step's device scalars here and
//! flushes every `log_interval` steps (and before evaluations and checkpoints).

use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// One step's figures once read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// 1-based: the number of optimizer steps done.
    pub step: u64,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    /// Wall time of the flushed interval divided by its steps.
    pub seconds: f64,
}

struct Pending<B: Backend> {
    step: u64,
    lr: f64,
    loss: Tensor<B, 1>,
    sq_norm: Tensor<B, 1>,
}

pub struct StepLog<B: Backend> {
    pending: Vec<Pending<B>>,
    since: Instant,
}

impl<B: Backend> Default for StepLog<B> {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            since: Instant::now(),
        }
    }
}

impl<B: Backend> StepLog<B> {
    /// Queues step `step`'s loss (`[1]`) and squared gradient norm (`[1]`).
    pub fn push(&mut self, step: u64, lr: f64, loss: Tensor<B, 1>, sq_norm: Tensor<B, 1>) {
        self.pending.push(Pending {
            step,
            lr,
            loss,
            sq_norm,
        });
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Restarts the interval clock (after work that is not training, e.g. an evaluation).
    pub fn restart_clock(&mut self) {
        self.since = Instant::now();
    }

    /// Reads every queued figure in one transfer and empties the queue.
    pub fn flush(&mut self) -> Vec<StepRecord> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let pending = std::mem::take(&mut self.pending);
        let n = pending.len();
        let scalars = pending
            .iter()
            .map(|p| p.loss.clone())
            .chain(pending.iter().map(|p| p.sq_norm.clone()))
            .collect();
        let host: Vec<f64> = Tensor::cat(scalars, 0)
            .into_data()
            .convert::<f64>()
            .to_vec()
            .expect("f64 after convert");
        let seconds = self.since.elapsed().as_secs_f64() / n as f64;
        self.since = Instant::now();
        pending
            .iter()
            .enumerate()
            .map(|(i, p)| StepRecord {
                step: p.step,
                lr: p.lr,
                loss: host[i],
                grad_norm: host[n + i].sqrt(),
                seconds,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lm_core::backends::NdArray;

    #[test]
    fn flush_returns_every_step_in_order_and_empties() {
        let device = Default::default();
        let mut log = StepLog::<NdArray>::default();
        for step in 1..=3u64 {
            let loss = Tensor::from_floats([step as f32], &device);
            let sq = Tensor::from_floats([(step * step) as f32 * 4.0], &device);
            log.push(step, 0.1, loss, sq);
        }
        assert_eq!(log.len(), 3);
        let records = log.flush();
        assert!(log.is_empty());
        let got: Vec<(u64, f64, f64)> = records
            .iter()
            .map(|r| (r.step, r.loss, r.grad_norm))
            .collect();
        assert_eq!(got, vec![(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 3.0, 6.0)]);
        assert!(log.flush().is_empty());
    }
}
