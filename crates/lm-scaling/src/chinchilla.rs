//! Chinchilla's approach 3: fit `L(N, D) = E + A / N^α + B / D^β` to every run, minimising
//! the Huber loss (δ = 1e-3) of `ln L̂ − ln L` with L-BFGS (argmin) started from the best
//! points of a grid, as Hoffmann et al. (2022, appendix D.2) do. The fitted surface gives the
//! compute-optimal allocation in closed form.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScalingError};
use crate::runs::Run;

/// A fitted loss surface `L(N, D) = E + A / N^α + B / D^β`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossSurface {
    pub e: f64,
    pub a: f64,
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl LossSurface {
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    /// Exponent of N_opt ∝ C^a under C = 6 N D: a = β / (α + β).
    pub fn n_exponent(&self) -> f64 {
        self.beta / (self.alpha + self.beta)
    }

    /// Exponent of D_opt ∝ C^b: b = α / (α + β).
    pub fn d_exponent(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The (N, D) minimising L(N, D) subject to 6 N D = c:
    /// N_opt = G (c/6)^a with G = (α A / (β B))^{1/(α+β)}, D_opt = (c/6) / N_opt.
    pub fn optimum(&self, c: f64) -> (f64, f64) {
        let g = (self.alpha * self.a / (self.beta * self.b)).powf(1.0 / (self.alpha + self.beta));
        let n = g * (c / 6.0).powf(self.n_exponent());
        (n, c / 6.0 / n)
    }

    fn from_theta(t: &[f64]) -> Self {
        Self {
            e: t[0].exp(),
            a: t[1].exp(),
            b: t[2].exp(),
            alpha: t[3],
            beta: t[4],
        }
    }
}

/// Settings of the approach-3 fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceFitOptions {
    /// Huber threshold on log-space residuals.
    pub delta: f64,
    /// Grid of starting points: values of ln E, ln A, ln B, α and β.
    pub grid_log_e: Vec<f64>,
    pub grid_log_a: Vec<f64>,
    pub grid_log_b: Vec<f64>,
    pub grid_alpha: Vec<f64>,
    pub grid_beta: Vec<f64>,
    /// L-BFGS runs from this many of the grid's lowest-objective points.
    pub starts: usize,
    pub max_iters: u64,
}

impl Default for SurfaceFitOptions {
    /// Hoffmann et al.'s grid (4,500 points).
    fn default() -> Self {
        let steps = |lo: f64, step: f64, n: usize| (0..n).map(|i| lo + step * i as f64).collect();
        Self {
            delta: 1e-3,
            grid_log_e: steps(-1.0, 0.5, 5),
            grid_log_a: steps(0.0, 5.0, 6),
            grid_log_b: steps(0.0, 5.0, 6),
            grid_alpha: steps(0.0, 0.5, 5),
            grid_beta: steps(0.0, 0.5, 5),
            starts: 32,
            max_iters: 1000,
        }
    }
}

/// The result of an approach-3 fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SurfaceFit {
    pub surface: LossSurface,
    /// The minimised Huber objective.
    pub objective: f64,
    /// Largest |ln L̂ − ln L| over the runs.
    pub max_log_residual: f64,
}

/// Fits the surface to `runs` from the best grid points.
pub fn fit_surface(runs: &[Run], opts: &SurfaceFitOptions) -> Result<SurfaceFit> {
    let problem = HuberLogLoss::new(runs, opts.delta)?;
    let grid = grid_points(opts);
    let mut scored: Vec<(f64, Vec<f64>)> = grid
        .into_par_iter()
        .map(|t| (problem.objective(&t), t))
        .filter(|(v, _)| v.is_finite())
        .collect();
    scored.sort_by(|x, y| x.0.total_cmp(&y.0));
    let starts: Vec<Vec<f64>> = scored
        .into_iter()
        .take(opts.starts.max(1))
        .map(|s| s.1)
        .collect();
    fit_from(&problem, &starts, opts.max_iters)
}

/// Fits from the given starting surfaces only (the bootstrap restarts from the full fit).
pub fn refit_surface(
    runs: &[Run],
    starts: &[LossSurface],
    opts: &SurfaceFitOptions,
) -> Result<SurfaceFit> {
    let problem = HuberLogLoss::new(runs, opts.delta)?;
    let thetas: Vec<Vec<f64>> = starts
        .iter()
        .map(|s| vec![s.e.ln(), s.a.ln(), s.b.ln(), s.alpha, s.beta])
        .collect();
    fit_from(&problem, &thetas, opts.max_iters)
}

fn fit_from(problem: &HuberLogLoss, starts: &[Vec<f64>], max_iters: u64) -> Result<SurfaceFit> {
    let best = starts
        .par_iter()
        .filter_map(|start| lbfgs(problem, start.clone(), max_iters))
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .ok_or_else(|| {
            ScalingError::Fit("L(N, D) fit: L-BFGS failed from every starting point".into())
        })?;
    let surface = LossSurface::from_theta(&best.1);
    Ok(SurfaceFit {
        surface,
        objective: best.0,
        max_log_residual: problem.max_abs_residual(&best.1),
    })
}

fn lbfgs(problem: &HuberLogLoss, start: Vec<f64>, max_iters: u64) -> Option<(f64, Vec<f64>)> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-13)
        .ok()?
        .with_tolerance_cost(0.0)
        .ok()?;
    let budget = Budgeted {
        problem,
        evals_left: AtomicU64::new(max_iters * 50),
    };
    let result = Executor::new(budget, solver)
        .configure(|s| s.param(start).max_iters(max_iters))
        .run()
        .ok()?;
    let state = result.state();
    let theta = state.get_best_param()?.clone();
    let cost = state.get_best_cost();
    (cost.is_finite() && theta.iter().all(|v| v.is_finite())).then_some((cost, theta))
}

fn grid_points(o: &SurfaceFitOptions) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for &e in &o.grid_log_e {
        for &a in &o.grid_log_a {
            for &b in &o.grid_log_b {
                for &alpha in &o.grid_alpha {
                    for &beta in &o.grid_beta {
                        out.push(vec![e, a, b, alpha, beta]);
                    }
                }
            }
        }
    }
    out
}

/// Σ Huber_δ(LSE(ln A − α ln N, ln B − β ln D, ln E) − ln L) over θ = (ln E, ln A, ln B, α, β).
struct HuberLogLoss {
    ln_n: Vec<f64>,
    ln_d: Vec<f64>,
    ln_l: Vec<f64>,
    delta: f64,
}

impl HuberLogLoss {
    fn new(runs: &[Run], delta: f64) -> Result<Self> {
        crate::runs::validate(runs).map_err(ScalingError::Fit)?;
        if runs.len() < 5 {
            return Err(ScalingError::Fit(format!(
                "an L(N, D) fit has 5 parameters and needs at least 5 runs, got {}",
                runs.len()
            )));
        }
        Ok(Self {
            ln_n: runs.iter().map(|r| r.parameters.ln()).collect(),
            ln_d: runs.iter().map(|r| r.tokens().ln()).collect(),
            ln_l: runs.iter().map(|r| r.final_loss.ln()).collect(),
            delta,
        })
    }

    /// For run i: the residual and the softmax weights of the three terms.
    fn residual(&self, t: &[f64], i: usize) -> (f64, [f64; 3]) {
        let terms = [t[1] - t[3] * self.ln_n[i], t[2] - t[4] * self.ln_d[i], t[0]];
        let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps = terms.map(|x| (x - m).exp());
        let sum: f64 = exps.iter().sum();
        (m + sum.ln() - self.ln_l[i], exps.map(|x| x / sum))
    }

    fn objective(&self, t: &[f64]) -> f64 {
        (0..self.ln_l.len())
            .map(|i| huber(self.residual(t, i).0, self.delta))
            .sum()
    }

    fn max_abs_residual(&self, t: &[f64]) -> f64 {
        (0..self.ln_l.len())
            .map(|i| self.residual(t, i).0.abs())
            .fold(0.0, f64::max)
    }
}

fn huber(r: f64, delta: f64) -> f64 {
    if r.abs() <= delta {
        0.5 * r * r
    } else {
        delta * (r.abs() - 0.5 * delta)
    }
}

/// The objective with a cap on evaluations: a line search that stalls from a bad start
/// (it can loop without counting iterations) ends with an error instead of hanging.
struct Budgeted<'a> {
    problem: &'a HuberLogLoss,
    evals_left: AtomicU64,
}

impl Budgeted<'_> {
    fn spend(&self) -> std::result::Result<(), argmin::core::Error> {
        let left = self.evals_left.fetch_sub(1, Ordering::Relaxed);
        if left == 0 {
            return Err(argmin::core::Error::msg("evaluation budget spent"));
        }
        Ok(())
    }
}

impl CostFunction for Budgeted<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, t: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        self.spend()?;
        Ok(self.problem.objective(t))
    }
}

impl Gradient for Budgeted<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, t: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        self.spend()?;
        Ok(self.problem.gradient(t))
    }
}

impl HuberLogLoss {
    fn gradient(&self, t: &[f64]) -> Vec<f64> {
        let mut g = vec![0.0; 5];
        for i in 0..self.ln_l.len() {
            let (r, w) = self.residual(t, i);
            let dr = r.clamp(-self.delta, self.delta);
            g[0] += dr * w[2];
            g[1] += dr * w[0];
            g[2] += dr * w[1];
            g[3] -= dr * w[0] * self.ln_n[i];
            g[4] -= dr * w[1] * self.ln_d[i];
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_on(s: &LossSurface) -> Vec<Run> {
        let mut runs = Vec::new();
        for c in [1e17f64, 1e18, 1e19, 1e20] {
            for k in 0..7 {
                let n = 1e6 * 10f64.powf(0.5 * k as f64) * (c / 1e17).sqrt();
                let mut r = Run::new(n, c, 0.0);
                r.final_loss = s.loss(n, r.tokens());
                runs.push(r);
            }
        }
        runs
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let truth = LossSurface {
            e: 1.8,
            a: 400.0,
            b: 1500.0,
            alpha: 0.34,
            beta: 0.28,
        };
        let p = HuberLogLoss::new(&runs_on(&truth), 1e-3).unwrap();
        let t = vec![0.4, 6.5, 7.0, 0.3, 0.3];
        let g = p.gradient(&t);
        for k in 0..5 {
            let h = 1e-6;
            let (mut up, mut down) = (t.clone(), t.clone());
            up[k] += h;
            down[k] -= h;
            let fd = (p.objective(&up) - p.objective(&down)) / (2.0 * h);
            assert!(
                (fd - g[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "θ{k}: {fd} vs {}",
                g[k]
            );
        }
    }

    #[test]
    fn recovers_a_noiseless_surface_and_its_optimum() {
        let truth = LossSurface {
            e: 1.69,
            a: 406.4,
            b: 410.7,
            alpha: 0.34,
            beta: 0.28,
        };
        let fit = fit_surface(&runs_on(&truth), &SurfaceFitOptions::default()).unwrap();
        let s = fit.surface;
        assert!((s.alpha - truth.alpha).abs() < 1e-3, "{s:?}");
        assert!((s.beta - truth.beta).abs() < 1e-3, "{s:?}");
        assert!(fit.max_log_residual < 1e-6, "{fit:?}");
        // The closed-form optimum is where L(N, C/(6N)) is smallest.
        let c = 1e21;
        let (n, d) = s.optimum(c);
        assert!((6.0 * n * d / c - 1.0).abs() < 1e-12);
        let at = |scale: f64| s.loss(n * scale, c / (6.0 * n * scale));
        assert!(at(1.0) < at(1.05) && at(1.0) < at(0.95));
    }
}
