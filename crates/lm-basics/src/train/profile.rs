//! A coarse per-phase profile of training steps: the device is synced after each phase, so
//! the times are what each phase costs when run alone (the profiled steps run slower than
//! the others, which overlap host and device work).

use std::time::Instant;

use burn::tensor::backend::Backend;
use serde_json::{Value, json};

use crate::error::{BasicsError, Result};

/// Steps run before profiling starts, so kernel compilation and autotuning are excluded.
pub const PROFILE_WARMUP_STEPS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Data,
    Forward,
    Backward,
    Optimizer,
}

const PHASES: [(Phase, &str); 4] = [
    (Phase::Data, "data (get_batch + upload)"),
    (Phase::Forward, "forward + loss"),
    (Phase::Backward, "backward"),
    (Phase::Optimizer, "grad norm + clip + AdamW"),
];

pub struct PhaseProfile {
    first: u64,
    end: u64,
    totals: [f64; 4],
    steps: u64,
    active: bool,
    mark: Instant,
}

impl PhaseProfile {
    /// Profiles `steps` steps starting `PROFILE_WARMUP_STEPS` after `start`; 0 = never.
    pub fn new(start: u64, steps: u64) -> Self {
        let first = start + PROFILE_WARMUP_STEPS;
        Self {
            first,
            end: first + steps,
            totals: [0.0; 4],
            steps: 0,
            active: false,
            mark: Instant::now(),
        }
    }

    fn sync<B: Backend>(device: &B::Device) -> Result<()> {
        B::sync(device).map_err(|e| BasicsError::invalid("device", format!("sync failed: {e:?}")))
    }

    /// Starts step `step` (0-based); profiling it if it falls in the window.
    pub fn begin<B: Backend>(&mut self, step: u64, device: &B::Device) -> Result<()> {
        self.active = (self.first..self.end).contains(&step);
        if self.active {
            Self::sync::<B>(device)?;
            self.mark = Instant::now();
        }
        Ok(())
    }

    /// Ends `phase` of the current step.
    pub fn end<B: Backend>(&mut self, phase: Phase, device: &B::Device) -> Result<()> {
        if self.active {
            Self::sync::<B>(device)?;
            let i = PHASES
                .iter()
                .position(|(p, _)| *p == phase)
                .expect("listed");
            self.totals[i] += self.mark.elapsed().as_secs_f64();
            if phase == Phase::Optimizer {
                self.steps += 1;
            }
            self.mark = Instant::now();
        }
        Ok(())
    }

    /// Whether every profiled step has run (and a report is ready).
    pub fn finished_at(&self, done: u64) -> bool {
        self.steps > 0 && done == self.end
    }

    /// A table (for the terminal) and its JSON, in ms per step.
    pub fn report(&self) -> Option<(String, Value)> {
        if self.steps == 0 {
            return None;
        }
        let per_step: Vec<f64> = self
            .totals
            .iter()
            .map(|t| t * 1e3 / self.steps as f64)
            .collect();
        let total: f64 = per_step.iter().sum();
        let mut table = format!(
            "profile over {} steps (device synced after each phase):\n",
            self.steps
        );
        let mut rows = Vec::new();
        for ((_, name), ms) in PHASES.iter().zip(&per_step) {
            table += &format!("  {name:<28} {ms:>9.3} ms  {:>5.1}%\n", 100.0 * ms / total);
            rows.push(json!({"phase": name, "ms_per_step": ms, "share": ms / total}));
        }
        table += &format!("  {:<28} {total:>9.3} ms", "step");
        Some((
            table,
            json!({"steps": self.steps, "phases": rows, "ms_per_step": total}),
        ))
    }
}
