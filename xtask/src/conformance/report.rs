//! Printing: one row per case, then a summary per op.

use std::collections::BTreeMap;

use super::{CaseResult, Report};

pub fn header() -> String {
    format!(
        "{:<20} {:<42} {:>11} {:>11} {:>7}  result",
        "op", "case", "max abs", "max rel", "usage"
    )
}

/// One line for a case; failures add an indented line per failing tensor.
pub fn row(r: &CaseResult) -> String {
    let label = r
        .name
        .strip_prefix(&format!("{}/", r.op))
        .unwrap_or(&r.name);
    if let Some(e) = &r.error {
        return format!(
            "{:<20} {:<42} {:>11} {:>11} {:>7}  FAIL: {e}",
            r.op, label, "-", "-", "-"
        );
    }
    let worst =
        |f: fn(&super::compare::TensorCheck) -> f64| r.checks.iter().map(f).fold(0.0f64, f64::max);
    let mut line = format!(
        "{:<20} {:<42} {:>11.3e} {:>11.3e} {:>7.3}  {}",
        r.op,
        label,
        worst(|c| c.max_abs_err),
        worst(|c| c.max_rel_err),
        worst(|c| c.usage),
        if r.passed() { "pass" } else { "FAIL" }
    );
    for c in r.checks.iter().filter(|c| !c.passed()) {
        line.push_str(&format!(
            "\n    {}: {}",
            c.key,
            c.failure.as_deref().unwrap_or("")
        ));
    }
    line
}

pub fn summary(report: &Report) -> String {
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in &report.results {
        let e = per_op.entry(&r.op).or_default();
        e.1 += 1;
        if r.passed() {
            e.0 += 1;
        }
    }
    let passed = report.results.iter().filter(|r| r.passed()).count();
    let mut out = String::from("\nsummary per op (passed/total):\n");
    for (op, (p, t)) in &per_op {
        out.push_str(&format!(
            "  {op:<36} {p}/{t}{}\n",
            if p == t { "" } else { "  <- FAIL" }
        ));
    }
    if !report.unimplemented.is_empty() {
        let names: Vec<_> = report.unimplemented.iter().map(String::as_str).collect();
        out.push_str(&format!("ops not implemented: {}\n", names.join(", ")));
    }
    out.push_str(&format!(
        "{passed}/{} cases passed: {}",
        report.results.len(),
        if report.passed() { "OK" } else { "FAILED" }
    ));
    out
}
