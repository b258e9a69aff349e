//! Where a generation's decode steps spend their time, for finding out whether a GPU
//! engine is bound by the host (launching kernels) or by the device (running them).

use std::time::Duration;

use serde::Serialize;

/// Sums over the decode steps since timing was switched on ([`super::Engine::with_step_timing`]).
///
/// On an asynchronous device each step is split at a device sync placed after the model's
/// call: `enqueue` is the host building and launching the step's kernels, `wait` the device
/// work still queued when the host was done (near zero when the host is the bound), and
/// `sample` the draw (its kernels, the read-back of the tokens) and the bookkeeping. The
/// sync costs the overlap of one step's draw launches with the model's tail, so timed runs
/// are slightly slower than untimed ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepTiming {
    pub decode_steps: usize,
    pub enqueue_s: f64,
    pub wait_s: f64,
    pub sample_s: f64,
}

/// Per-step means in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepMillis {
    pub steps: usize,
    pub enqueue_ms: f64,
    pub wait_ms: f64,
    pub sample_ms: f64,
}

impl StepTiming {
    pub(super) fn add(&mut self, enqueue: Duration, wait: Duration, sample: Duration) {
        self.decode_steps += 1;
        self.enqueue_s += enqueue.as_secs_f64();
        self.wait_s += wait.as_secs_f64();
        self.sample_s += sample.as_secs_f64();
    }

    /// The means per decode step, or `None` before the first step.
    pub fn per_step(&self) -> Option<StepMillis> {
        let n = self.decode_steps;
        (n > 0).then(|| {
            let ms = |s: f64| s * 1e3 / n as f64;
            StepMillis {
                steps: n,
                enqueue_ms: ms(self.enqueue_s),
                wait_ms: ms(self.wait_s),
                sample_ms: ms(self.sample_s),
            }
        })
    }
}
