//! The experiment planner: an IsoFLOP grid — several model sizes at each of several compute
//! budgets — chosen to fit a total FLOP (or GPU-hour) budget.

use serde::{Deserialize, Serialize};

use super::config::{
    D_MODEL_RANGE, NUM_HEADS_RANGE, NUM_LAYERS_RANGE, RunConfig, TRAIN_FLOPS_LEVELS,
};
use crate::error::{Result, ScalingError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanOptions {
    /// FLOPs the whole plan may spend.
    pub total_budget: f64,
    /// How many consecutive compute budgets (IsoFLOP curves) to use.
    pub levels: usize,
    /// Model sizes per budget.
    pub sizes_per_level: usize,
    /// Largest over smallest model size within one budget.
    pub size_spread: f64,
    /// Lowest compute budget considered.
    pub min_level: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            total_budget: super::client::COURSE_BUDGET,
            levels: 6,
            sizes_per_level: 5,
            size_spread: 16.0,
            min_level: 1e14 as u64,
            batch_size: 128,
            learning_rate: 6e-4,
        }
    }
}

impl PlanOptions {
    /// A budget in GPU-hours at `tflops` peak and model-FLOP utilisation `mfu`, as FLOPs.
    pub fn flops_from_gpu_hours(gpu_hours: f64, tflops: f64, mfu: f64) -> f64 {
        gpu_hours * 3600.0 * tflops * 1e12 * mfu
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub options: PlanOptions,
    pub runs: Vec<RunConfig>,
    pub total_flops: f64,
}

/// The highest window of `levels` consecutive allowed budgets whose runs fit the total; each
/// budget gets sizes spread log-evenly around the Chinchilla guess N ≈ sqrt(C / 120)
/// (D = 20 N), each realised by the nearest allowed shape.
pub fn plan(opts: &PlanOptions) -> Result<Plan> {
    if opts.levels < 2 || opts.sizes_per_level < 3 {
        return Err(ScalingError::Fit(
            "a plan needs at least 2 budgets and 3 sizes per budget (a parabola per curve)".into(),
        ));
    }
    if opts.size_spread <= 1.0 {
        return Err(ScalingError::Fit(format!(
            "size spread must exceed 1, got {}",
            opts.size_spread
        )));
    }
    let allowed: Vec<u64> = TRAIN_FLOPS_LEVELS
        .iter()
        .copied()
        .filter(|&c| c >= opts.min_level)
        .collect();
    let windows = allowed.windows(opts.levels).rev();
    let mut chosen = None;
    for window in windows {
        let runs: Vec<RunConfig> = window.iter().flat_map(|&c| level_runs(c, opts)).collect();
        let total: f64 = runs.iter().map(|r| r.train_flops as f64).sum();
        if total <= opts.total_budget {
            chosen = Some((runs, total));
            break;
        }
    }
    let (runs, total_flops) = chosen.ok_or_else(|| {
        ScalingError::Budget(format!(
            "no {} consecutive compute budgets from {:e} fit in {:e} FLOPs with {} sizes each; \
             lower --levels, --sizes or --min-level",
            opts.levels, opts.min_level as f64, opts.total_budget, opts.sizes_per_level
        ))
    })?;
    Ok(Plan {
        options: opts.clone(),
        runs,
        total_flops,
    })
}

fn level_runs(train_flops: u64, opts: &PlanOptions) -> Vec<RunConfig> {
    let center = (train_flops as f64 / 120.0).sqrt();
    let k = opts.sizes_per_level;
    let mut out: Vec<RunConfig> = Vec::new();
    for i in 0..k {
        let t = i as f64 / (k - 1) as f64 - 0.5;
        let target = center * opts.size_spread.powf(t);
        let (d_model, num_layers, num_heads) = nearest_shape(target);
        let cfg = RunConfig {
            d_model,
            num_layers,
            num_heads,
            batch_size: opts.batch_size,
            learning_rate: opts.learning_rate,
            train_flops,
        };
        if !out.contains(&cfg) {
            out.push(cfg);
        }
    }
    out
}

/// The allowed (d_model, layers, heads) with 12 L d² closest to `target` in log space,
/// preferring d_model / layers near 64 (heads of 64 dimensions).
pub fn nearest_shape(target: f64) -> (usize, usize, usize) {
    let mut best = (f64::INFINITY, (0, 0, 0));
    for d in (D_MODEL_RANGE.0..=D_MODEL_RANGE.1).step_by(64) {
        for l in NUM_LAYERS_RANGE.0..=NUM_LAYERS_RANGE.1 {
            let n = 12.0 * l as f64 * (d * d) as f64;
            let aspect = (d as f64 / (64.0 * l as f64)).ln().abs();
            let cost = (n / target).ln().abs() + 0.05 * aspect;
            if cost < best.0 {
                let heads = (d / 64).clamp(NUM_HEADS_RANGE.0, NUM_HEADS_RANGE.1);
                best = (cost, (d, l, heads));
            }
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_fit_the_budget_and_every_run_is_valid() {
        let p = plan(&PlanOptions::default()).unwrap();
        assert!(p.total_flops <= 2e18);
        let levels: std::collections::BTreeSet<u64> =
            p.runs.iter().map(|r| r.train_flops).collect();
        assert_eq!(levels.len(), 6);
        for r in &p.runs {
            r.validate().unwrap();
        }
        // The next window up would not have fitted: the plan uses the largest budgets it can.
        let top = *levels.iter().max().unwrap();
        let next = TRAIN_FLOPS_LEVELS.iter().find(|&&c| c > top).unwrap();
        assert!(
            p.total_flops - *levels.iter().min().unwrap() as f64 * 5.0 + *next as f64 * 5.0 > 2e18
        );
        let tiny = PlanOptions {
            total_budget: 1e14,
            ..Default::default()
        };
        assert!(plan(&tiny).unwrap_err().to_string().contains("fit in"));
    }

    #[test]
    fn shapes_track_the_target_size() {
        for target in [3e5, 3e6, 3e7, 3e8] {
            let (d, l, h) = nearest_shape(target);
            let n = 12.0 * l as f64 * (d * d) as f64;
            assert!((n / target).ln().abs() < 0.35, "{target}: {d}x{l} = {n}");
            assert_eq!(d % h, 0);
        }
    }
}
