//! The IsoFLOP methods: per compute budget, the compute-optimal model size N_opt — the
//! lowest-loss run (the handout's method) or the minimum of a parabola in ln N (Chinchilla's
//! approach 2) — then D_opt = C / (6 N_opt) and power laws N_opt = k C^a, D_opt = k C^b.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ScalingError};
use crate::regression::{PowerLaw, polyfit};
use crate::runs::{Run, by_budget};

/// How the optimum of one IsoFLOP curve is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimumRule {
    /// The run with the lowest final loss (ties: first in input order).
    LowestLoss,
    /// The vertex of `loss = c0 + c1 ln N + c2 (ln N)^2` fitted to the budget's runs.
    Parabola,
}

/// The optimum of one compute budget's curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BudgetOptimum {
    pub budget: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    /// Loss at the optimum (the run's, or the parabola's at its vertex).
    pub loss: f64,
    /// `[c0, c1, c2]` of the parabola in ln N (approach 2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parabola: Option<[f64; 3]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsoflopFit {
    pub rule: OptimumRule,
    /// Ascending by budget.
    pub optima: Vec<BudgetOptimum>,
    pub n_law: PowerLaw,
    pub d_law: PowerLaw,
}

impl IsoflopFit {
    pub fn fit(runs: &[Run], rule: OptimumRule) -> Result<Self> {
        let optima = by_budget(runs)
            .iter()
            .map(|(budget, group)| match rule {
                OptimumRule::LowestLoss => Ok(lowest_loss(*budget, group)),
                OptimumRule::Parabola => parabola_vertex(*budget, group),
            })
            .collect::<Result<Vec<_>>>()?;
        if optima.len() < 2 {
            return Err(ScalingError::Fit(format!(
                "an IsoFLOP fit needs at least 2 compute budgets, got {}",
                optima.len()
            )));
        }
        let budgets: Vec<f64> = optima.iter().map(|o| o.budget).collect();
        let ns: Vec<f64> = optima.iter().map(|o| o.n_opt).collect();
        let ds: Vec<f64> = optima.iter().map(|o| o.d_opt).collect();
        Ok(Self {
            rule,
            n_law: PowerLaw::fit(&budgets, &ns)?,
            d_law: PowerLaw::fit(&budgets, &ds)?,
            optima,
        })
    }

    /// Compute-optimal (N, D) at budget `c`.
    pub fn predict(&self, c: f64) -> (f64, f64) {
        (self.n_law.at(c), self.d_law.at(c))
    }
}

fn lowest_loss(budget: f64, group: &[Run]) -> BudgetOptimum {
    // `min_by` keeps the last of equal elements; fold keeps the first.
    let best = group.iter().skip(1).fold(group[0], |best, r| {
        if r.final_loss < best.final_loss {
            *r
        } else {
            best
        }
    });
    BudgetOptimum {
        budget,
        n_opt: best.parameters,
        d_opt: budget / (6.0 * best.parameters),
        loss: best.final_loss,
        parabola: None,
    }
}

fn parabola_vertex(budget: f64, group: &[Run]) -> Result<BudgetOptimum> {
    let xs: Vec<f64> = group.iter().map(|r| r.parameters.ln()).collect();
    let ys: Vec<f64> = group.iter().map(|r| r.final_loss).collect();
    let c =
        polyfit(&xs, &ys, 2).map_err(|e| ScalingError::Fit(format!("budget {budget:e}: {e}")))?;
    if c[2] <= 0.0 {
        return Err(ScalingError::Fit(format!(
            "budget {budget:e}: the loss is not convex in ln N (parabola curvature {:e}); \
             the runs do not bracket a minimum",
            c[2]
        )));
    }
    let x = -c[1] / (2.0 * c[2]);
    let n_opt = x.exp();
    Ok(BudgetOptimum {
        budget,
        n_opt,
        d_opt: budget / (6.0 * n_opt),
        loss: c[0] + c[1] * x + c[2] * x * x,
        parabola: Some([c[0], c[1], c[2]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs on a Chinchilla-like surface: IsoFLOP minima follow N_opt ∝ C^{β/(α+β)}.
    fn surface_runs() -> Vec<Run> {
        let (e, a, b, alpha, beta) = (1.7, 400.0, 1800.0, 0.34, 0.28);
        let mut runs = Vec::new();
        for c in [1e18, 1e19, 1e20, 1e21] {
            let center = (c / 6.0f64).powf(beta / (alpha + beta)) * 0.2;
            for k in -8..=8 {
                let n = center * 10f64.powf(k as f64 * 0.1);
                let d = c / (6.0 * n);
                runs.push(Run::new(n, c, e + a / n.powf(alpha) + b / d.powf(beta)));
            }
        }
        runs
    }

    #[test]
    fn both_rules_find_the_surface_exponent() {
        let want = 0.28 / (0.34 + 0.28);
        let runs = surface_runs();
        for rule in [OptimumRule::LowestLoss, OptimumRule::Parabola] {
            let fit = IsoflopFit::fit(&runs, rule).unwrap();
            assert_eq!(fit.optima.len(), 4);
            assert!(
                (fit.n_law.exponent - want).abs() < 0.03,
                "{rule:?}: {fit:?}"
            );
            assert!((fit.n_law.exponent + fit.d_law.exponent - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn lowest_loss_ties_keep_the_first_run_and_bad_curves_are_named() {
        let runs = [
            Run::new(5.0, 1e18, 2.0),
            Run::new(7.0, 1e18, 2.0),
            Run::new(9.0, 1e19, 1.0),
        ];
        let fit = IsoflopFit::fit(&runs, OptimumRule::LowestLoss).unwrap();
        assert_eq!(fit.optima[0].n_opt, 5.0);
        let e = IsoflopFit::fit(&runs, OptimumRule::Parabola)
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget 1e18"), "{e}");
        let concave = [1.0, 2.0, 3.0].map(|x: f64| Run::new(10f64.powf(x), 1e18, -x * x));
        let e = parabola_vertex(1e18, &concave).unwrap_err().to_string();
        assert!(e.contains("not convex"), "{e}");
    }
}
