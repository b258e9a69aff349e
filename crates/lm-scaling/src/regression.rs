//! Least-squares polynomial fits (nalgebra's SVD solve), and power laws fitted as lines in
//! log-log space.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScalingError};

/// Coefficients `c[0] + c[1] x + … + c[degree] x^degree` minimising the squared error.
pub fn polyfit(xs: &[f64], ys: &[f64], degree: usize) -> Result<Vec<f64>> {
    if xs.len() != ys.len() {
        return Err(ScalingError::Fit(format!(
            "polyfit: {} x values but {} y values",
            xs.len(),
            ys.len()
        )));
    }
    if xs.len() <= degree {
        return Err(ScalingError::Fit(format!(
            "a degree-{degree} fit needs at least {} points, got {}",
            degree + 1,
            xs.len()
        )));
    }
    if xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return Err(ScalingError::Fit("polyfit: non-finite value".into()));
    }
    let design = DMatrix::from_fn(xs.len(), degree + 1, |i, j| xs[i].powi(j as i32));
    let target = DVector::from_column_slice(ys);
    let solution = design
        .svd(true, true)
        .solve(&target, 1e-14)
        .map_err(|e| ScalingError::Fit(format!("least squares: {e}")))?;
    Ok(solution.iter().copied().collect())
}

/// `y = coefficient · x^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    pub coefficient: f64,
    pub exponent: f64,
}

impl PowerLaw {
    /// Least squares of `ln y = ln k + a ln x` (the base of the logarithm does not matter).
    pub fn fit(xs: &[f64], ys: &[f64]) -> Result<Self> {
        if xs.iter().chain(ys).any(|&v| v <= 0.0) {
            return Err(ScalingError::Fit(
                "a power-law fit needs positive values".into(),
            ));
        }
        let (lx, ly): (Vec<f64>, Vec<f64>) =
            xs.iter().zip(ys).map(|(x, y)| (x.ln(), y.ln())).unzip();
        let c = polyfit(&lx, &ly, 1)?;
        Ok(Self {
            coefficient: c[0].exp(),
            exponent: c[1],
        })
    }

    pub fn at(&self, x: f64) -> f64 {
        self.coefficient * x.powf(self.exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_polynomials_and_power_laws() {
        let xs: Vec<f64> = (0..7).map(|i| i as f64 * 0.5 - 1.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 - 3.0 * x + 0.5 * x * x).collect();
        let c = polyfit(&xs, &ys, 2).unwrap();
        for (got, want) in c.iter().zip([2.0, -3.0, 0.5]) {
            assert!((got - want).abs() < 1e-12, "{c:?}");
        }
        let cs = [1e18, 1e19, 1e20, 1e21];
        let ns: Vec<f64> = cs.iter().map(|c: &f64| 0.3 * c.powf(0.49)).collect();
        let law = PowerLaw::fit(&cs, &ns).unwrap();
        assert!((law.exponent - 0.49).abs() < 1e-12 && (law.coefficient / 0.3 - 1.0).abs() < 1e-9);
        assert!((law.at(1e24) / (0.3 * 1e24f64.powf(0.49)) - 1.0).abs() < 1e-9);
        assert!(polyfit(&[1.0, 2.0], &[1.0, 2.0], 2).is_err());
        assert!(PowerLaw::fit(&[1.0, -2.0], &[1.0, 2.0]).is_err());
    }
}
