//! Every fit on one set of runs — the IsoFLOP method (lowest-loss run), Chinchilla's
//! approaches 2 (parabolas) and 3 (the L(N, D) surface) — with bootstrap percentile intervals
//! for the exponents and the predictions.

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use statrs::statistics::{Data, OrderStatistics};

use crate::chinchilla::{SurfaceFit, SurfaceFitOptions, fit_surface, refit_surface};
use crate::error::{Result, ScalingError};
use crate::isoflop::{IsoflopFit, OptimumRule};
use crate::runs::{Run, by_budget};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalysisOptions {
    /// Budgets (FLOPs) to predict the compute-optimal N and D at.
    pub predict_budgets: Vec<f64>,
    /// Bootstrap replicates (0 = no intervals).
    pub bootstrap: usize,
    /// Central probability of the intervals (0.95 → 2.5th to 97.5th percentile).
    pub confidence: f64,
    pub seed: u64,
    pub surface: SurfaceFitOptions,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            predict_budgets: vec![1e23, 1e24],
            bootstrap: 200,
            confidence: 0.95,
            seed: 0,
            surface: SurfaceFitOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The handout's IsoFLOP method: the lowest-loss run of each budget.
    IsoflopMin,
    /// Chinchilla approach 2: a parabola in ln N per budget.
    IsoflopParabola,
    /// Chinchilla approach 3: L(N, D) = E + A/N^α + B/D^β.
    LossSurface,
}

impl Method {
    pub const ALL: [Method; 3] = [Self::IsoflopMin, Self::IsoflopParabola, Self::LossSurface];

    pub fn label(self) -> &'static str {
        match self {
            Self::IsoflopMin => "IsoFLOP (lowest-loss run)",
            Self::IsoflopParabola => "approach 2 (parabola)",
            Self::LossSurface => "approach 3 (L(N, D) fit)",
        }
    }
}

/// A point estimate and its bootstrap interval (absent without bootstrap).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub budget: f64,
    pub n_opt: Estimate,
    pub d_opt: Estimate,
    /// The surface's loss at (N_opt, D_opt) (approach 3 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<Estimate>,
}

/// What one method found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: Method,
    pub n_exponent: Estimate,
    pub d_exponent: Estimate,
    pub predictions: Vec<Prediction>,
    /// Bootstrap replicates whose fit failed (left out of the intervals).
    pub failed_replicates: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub options: AnalysisOptions,
    pub runs: usize,
    pub budgets: usize,
    pub isoflop: IsoflopFit,
    pub parabola: Option<IsoflopFit>,
    pub surface: Option<SurfaceFit>,
    pub methods: Vec<MethodResult>,
    /// Why a method is missing, and other warnings.
    pub notes: Vec<String>,
}

/// The point fits of one sample of runs.
struct Fits {
    isoflop: Option<IsoflopFit>,
    parabola: Option<IsoflopFit>,
    surface: Option<SurfaceFit>,
}

/// What one fit says: the exponents and, per prediction budget, (N, D, loss).
struct Summary {
    n_exponent: f64,
    d_exponent: f64,
    predictions: Vec<[f64; 3]>,
}

/// Reads one number out of a [`Summary`].
type Pick<'a> = &'a dyn Fn(&Summary) -> f64;

impl Fits {
    /// The summary of `method`, if its fit worked.
    fn summary(&self, method: Method, budgets: &[f64]) -> Option<Summary> {
        let iso = |f: &IsoflopFit| Summary {
            n_exponent: f.n_law.exponent,
            d_exponent: f.d_law.exponent,
            predictions: budgets
                .iter()
                .map(|&c| {
                    let (n, d) = f.predict(c);
                    [n, d, f64::NAN]
                })
                .collect(),
        };
        match method {
            Method::IsoflopMin => self.isoflop.as_ref().map(iso),
            Method::IsoflopParabola => self.parabola.as_ref().map(iso),
            Method::LossSurface => self.surface.as_ref().map(|f| {
                let s = f.surface;
                Summary {
                    n_exponent: s.n_exponent(),
                    d_exponent: s.d_exponent(),
                    predictions: budgets
                        .iter()
                        .map(|&c| {
                            let (n, d) = s.optimum(c);
                            [n, d, s.loss(n, d)]
                        })
                        .collect(),
                }
            }),
        }
    }
}

/// Runs every method on `runs`, then `opts.bootstrap` resamples (runs drawn with replacement
/// within each budget, so every IsoFLOP curve stays present) for the intervals.
pub fn analyze(runs: &[Run], opts: &AnalysisOptions) -> Result<Analysis> {
    crate::runs::validate(runs).map_err(ScalingError::Fit)?;
    if !(0.0..1.0).contains(&opts.confidence) || opts.confidence == 0.0 {
        return Err(ScalingError::Fit(format!(
            "confidence must be in (0, 1), got {}",
            opts.confidence
        )));
    }
    let mut notes = Vec::new();
    let isoflop = IsoflopFit::fit(runs, OptimumRule::LowestLoss)?;
    let parabola = IsoflopFit::fit(runs, OptimumRule::Parabola)
        .map_err(|e| notes.push(format!("approach 2 left out: {e}")))
        .ok();
    let surface = fit_surface(runs, &opts.surface)
        .map_err(|e| notes.push(format!("approach 3 left out: {e}")))
        .ok();
    let full = Fits {
        isoflop: Some(isoflop.clone()),
        parabola: parabola.clone(),
        surface,
    };

    let groups = by_budget(runs);
    let replicates: Vec<Fits> = (0..opts.bootstrap)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(i as u64 + 1);
            let sample: Vec<Run> = groups
                .iter()
                .flat_map(|(_, g)| {
                    (0..g.len())
                        .map(|_| *g.choose(&mut rng).expect("non-empty"))
                        .collect::<Vec<_>>()
                })
                .collect();
            Fits {
                isoflop: IsoflopFit::fit(&sample, OptimumRule::LowestLoss).ok(),
                parabola: full
                    .parabola
                    .as_ref()
                    .and_then(|_| IsoflopFit::fit(&sample, OptimumRule::Parabola).ok()),
                surface: full
                    .surface
                    .as_ref()
                    .and_then(|f| refit_surface(&sample, &[f.surface], &opts.surface).ok()),
            }
        })
        .collect();

    let budgets = &opts.predict_budgets;
    let methods = Method::ALL
        .iter()
        .filter_map(|&m| {
            let point = full.summary(m, budgets)?;
            let boot: Vec<Summary> = replicates
                .iter()
                .filter_map(|r| r.summary(m, budgets))
                .collect();
            let estimate = |pick: Pick| Estimate {
                value: pick(&point),
                interval: percentile_interval(boot.iter().map(pick).collect(), opts.confidence),
            };
            let predictions = budgets
                .iter()
                .enumerate()
                .map(|(j, &budget)| Prediction {
                    budget,
                    n_opt: estimate(&|s| s.predictions[j][0]),
                    d_opt: estimate(&|s| s.predictions[j][1]),
                    loss: (m == Method::LossSurface).then(|| estimate(&|s| s.predictions[j][2])),
                })
                .collect();
            Some(MethodResult {
                method: m,
                n_exponent: estimate(&|s| s.n_exponent),
                d_exponent: estimate(&|s| s.d_exponent),
                predictions,
                failed_replicates: replicates.len() - boot.len(),
            })
        })
        .collect();
    Ok(Analysis {
        options: opts.clone(),
        runs: runs.len(),
        budgets: isoflop.optima.len(),
        isoflop,
        parabola,
        surface: full.surface,
        methods,
        notes,
    })
}

/// The central `confidence` percentile interval, or `None` with fewer than 2 values.
fn percentile_interval(values: Vec<f64>, confidence: f64) -> Option<(f64, f64)> {
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.len() < 2 {
        return None;
    }
    let mut data = Data::new(values);
    let tail = (1.0 - confidence) / 2.0;
    Some((data.quantile(tail), data.quantile(1.0 - tail)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chinchilla::LossSurface;
    use rand_distr::{Distribution, Normal};

    fn noisy_runs(sigma: f64, seed: u64) -> (LossSurface, Vec<Run>) {
        let truth = LossSurface {
            e: 1.7,
            a: 480.0,
            b: 2100.0,
            alpha: 0.35,
            beta: 0.3,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, sigma).unwrap();
        let mut runs = Vec::new();
        for c in [1e17f64, 1e18, 1e19, 1e20] {
            let (n0, _) = truth.optimum(c);
            for k in -4..=4 {
                let n = n0 * 10f64.powf(k as f64 * 0.2);
                let mut r = Run::new(n, c, 0.0);
                r.final_loss = truth.loss(n, r.tokens()) * (1.0 + noise.sample(&mut rng));
                runs.push(r);
            }
        }
        (truth, runs)
    }

    #[test]
    fn intervals_cover_the_truth_and_are_reproducible() {
        let (truth, runs) = noisy_runs(0.004, 3);
        let opts = AnalysisOptions {
            bootstrap: 60,
            ..Default::default()
        };
        let a = analyze(&runs, &opts).unwrap();
        assert_eq!(a.methods.len(), 3, "{:?}", a.notes);
        let want = truth.n_exponent();
        for m in &a.methods {
            let (lo, hi) = m.n_exponent.interval.unwrap();
            assert!(
                lo <= m.n_exponent.value + 1e-12 && m.n_exponent.value <= hi + 1e-12,
                "{m:?}"
            );
            assert!(
                lo - 0.05 < want && want < hi + 0.05,
                "{:?}: {lo}..{hi} vs {want}",
                m.method
            );
            assert_eq!(m.predictions.len(), 2);
        }
        let surface = a
            .methods
            .iter()
            .find(|m| m.method == Method::LossSurface)
            .unwrap();
        let (lo, hi) = surface.n_exponent.interval.unwrap();
        assert!(lo < want && want < hi, "approach 3: {lo}..{hi} vs {want}");
        let again = analyze(&runs, &opts).unwrap();
        assert_eq!(
            serde_json::to_string(&a.methods).unwrap(),
            serde_json::to_string(&again.methods).unwrap()
        );
    }
}
