//! The golden comparison rule (shared/golden/README.md §2, "what pass means").

use super::tensors::{HostTensor, Values};

/// How one produced tensor compares with its expected value.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCheck {
    pub key: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    /// `max |a−e| / (atol + rtol·|e|)`: the fraction of the tolerance used; pass iff ≤ 1.
    pub usage: f64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

impl TensorCheck {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    pub fn failed(key: &str, why: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            max_abs_err: f64::NAN,
            max_rel_err: f64::NAN,
            usage: f64::INFINITY,
            failure: Some(why.into()),
        }
    }
}

fn same_shape(a: &[usize], b: &[usize]) -> bool {
    let norm = |s: &[usize]| if s.is_empty() { vec![1] } else { s.to_vec() };
    norm(a) == norm(b)
}

/// Compares `actual` with `expected` under `(rtol, atol)`.
pub fn compare(
    key: &str,
    actual: &HostTensor,
    expected: &HostTensor,
    rtol: f64,
    atol: f64,
) -> TensorCheck {
    if !same_shape(&actual.shape, &expected.shape) {
        return TensorCheck::failed(
            key,
            format!("shape {:?}, expected {:?}", actual.shape, expected.shape),
        );
    }
    match (&actual.values, &expected.values) {
        (Values::Float(a), Values::Float(e)) => compare_floats(key, a, e, rtol, atol),
        (Values::Int(a), Values::Int(e)) => exact(key, a, e),
        (Values::Bool(a), Values::Bool(e)) => exact(key, a, e),
        _ => TensorCheck::failed(
            key,
            format!(
                "dtype {} where {} is expected",
                actual.dtype, expected.dtype
            ),
        ),
    }
}

fn exact<T: PartialEq + std::fmt::Debug>(key: &str, a: &[T], e: &[T]) -> TensorCheck {
    let wrong = a.iter().zip(e).filter(|(x, y)| x != y).count();
    let first = a.iter().zip(e).position(|(x, y)| x != y);
    TensorCheck {
        key: key.into(),
        max_abs_err: if wrong == 0 { 0.0 } else { f64::NAN },
        max_rel_err: if wrong == 0 { 0.0 } else { f64::NAN },
        usage: if wrong == 0 { 0.0 } else { f64::INFINITY },
        failure: first.map(|i| {
            format!(
                "{wrong} elements differ; first at {i}: {:?} vs {:?}",
                a[i], e[i]
            )
        }),
    }
}

fn compare_floats(key: &str, a: &[f64], e: &[f64], rtol: f64, atol: f64) -> TensorCheck {
    let (mut max_abs, mut max_rel, mut usage) = (0.0f64, 0.0f64, 0.0f64);
    let mut failure = None;
    for (i, (&x, &y)) in a.iter().zip(e).enumerate() {
        if x.is_nan() || y.is_nan() {
            if x.is_nan() != y.is_nan() && failure.is_none() {
                failure = Some(format!("NaN mismatch at {i}: {x} vs {y}"));
            }
            continue;
        }
        if x == y {
            continue; // includes equal infinities
        }
        if x.is_infinite() || y.is_infinite() {
            // Unequal where one is infinite: no tolerance covers it (and ∞/∞ would be NaN).
            usage = f64::INFINITY;
            max_abs = f64::INFINITY;
            continue;
        }
        let diff = (x - y).abs();
        max_abs = max_abs.max(diff);
        if y != 0.0 {
            max_rel = max_rel.max(diff / y.abs());
        }
        usage = usage.max(diff / (atol + rtol * y.abs()));
    }
    if failure.is_none() && usage > 1.0 {
        failure = Some(format!(
            "uses {usage:.3}× the tolerance (rtol {rtol:e}, atol {atol:e})"
        ));
    }
    TensorCheck {
        key: key.into(),
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        usage,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(values: &[f64]) -> HostTensor {
        HostTensor::float(vec![values.len()], values.to_vec())
    }

    #[test]
    fn within_and_outside_tolerance() {
        let e = f(&[1.0, -2.0, 0.0]);
        assert!(compare("y", &f(&[1.0 + 1e-6, -2.0, 1e-7]), &e, 1e-5, 1e-6).passed());
        let bad = compare("y", &f(&[1.001, -2.0, 0.0]), &e, 1e-5, 1e-6);
        assert!(!bad.passed());
        assert!((bad.max_abs_err - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn nan_positions_must_coincide() {
        let e = f(&[f64::NAN, 1.0]);
        assert!(compare("y", &f(&[f64::NAN, 1.0]), &e, 1e-5, 0.0).passed());
        assert!(!compare("y", &f(&[0.0, 1.0]), &e, 1e-5, 0.0).passed());
        assert!(!compare("y", &f(&[f64::NAN, f64::NAN]), &e, 1e-5, 0.0).passed());
    }

    #[test]
    fn scalar_shapes_are_interchangeable_but_others_not() {
        let s = HostTensor::float(vec![], vec![3.0]);
        assert!(compare("loss", &f(&[3.0]), &s, 0.0, 0.0).passed());
        let m = HostTensor::float(vec![1, 2], vec![1.0, 2.0]);
        assert!(!compare("y", &f(&[1.0, 2.0]), &m, 1.0, 1.0).passed());
    }

    #[test]
    fn equal_infinities_pass() {
        let e = f(&[f64::INFINITY]);
        assert!(compare("y", &f(&[f64::INFINITY]), &e, 0.0, 0.0).passed());
        assert!(!compare("y", &f(&[f64::NEG_INFINITY]), &e, 0.0, 0.0).passed());
    }
}
