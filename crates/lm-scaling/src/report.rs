//! The fit report: a human-readable Markdown table and the full analysis as JSON.

use std::fmt::Write;
use std::path::Path;

use crate::analysis::{Analysis, Estimate};
use crate::error::{Result, ScalingError};

fn fmt_estimate(e: &Estimate, f: fn(f64) -> String) -> String {
    match e.interval {
        Some((lo, hi)) => format!("{} [{} – {}]", f(e.value), f(lo), f(hi)),
        None => f(e.value),
    }
}

fn exp3(v: f64) -> String {
    format!("{v:.4}")
}

fn sci(v: f64) -> String {
    format!("{v:.3e}")
}

/// The report as Markdown: per-budget optima, exponents and predictions per method.
pub fn markdown(a: &Analysis) -> String {
    let mut s = String::new();
    let pct = a.options.confidence * 100.0;
    let _ = writeln!(s, "# Scaling-law fits\n");
    let _ = writeln!(
        s,
        "{} runs over {} compute budgets; intervals: {pct:.0}% bootstrap percentiles over {} \
         resamples (seed {}).\n",
        a.runs, a.budgets, a.options.bootstrap, a.options.seed
    );
    let _ = writeln!(s, "## Compute-optimal model size per budget\n");
    let _ = writeln!(
        s,
        "| budget C | N_opt (lowest loss) | D_opt | loss | N_opt (parabola) |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
    for (i, o) in a.isoflop.optima.iter().enumerate() {
        let para = a
            .parabola
            .as_ref()
            .map_or("–".into(), |p| sci(p.optima[i].n_opt));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {para} |",
            sci(o.budget),
            sci(o.n_opt),
            sci(o.d_opt),
            o.loss
        );
    }
    let _ = writeln!(s, "\n## Exponents: N_opt ∝ C^a, D_opt ∝ C^b\n");
    let _ = writeln!(s, "| method | a | b |");
    let _ = writeln!(s, "|---|---:|---:|");
    for m in &a.methods {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            m.method.label(),
            fmt_estimate(&m.n_exponent, exp3),
            fmt_estimate(&m.d_exponent, exp3)
        );
    }
    if let Some(f) = &a.surface {
        let l = f.surface;
        let _ = writeln!(
            s,
            "\nApproach 3 surface: L(N, D) = {:.4} + {:.4e} / N^{:.4} + {:.4e} / D^{:.4} \
             (Huber objective {:.3e}, largest |log residual| {:.3e}).",
            l.e, l.a, l.alpha, l.b, l.beta, f.objective, f.max_log_residual
        );
    }
    let _ = writeln!(s, "\n## Predictions\n");
    let _ = writeln!(s, "| method | budget | N_opt | D_opt | loss |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for m in &a.methods {
        for p in &m.predictions {
            let loss = p.loss.map_or("–".into(), |l| fmt_estimate(&l, exp3));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {loss} |",
                m.method.label(),
                sci(p.budget),
                fmt_estimate(&p.n_opt, sci),
                fmt_estimate(&p.d_opt, sci)
            );
        }
    }
    for m in a.methods.iter().filter(|m| m.failed_replicates > 0) {
        let _ = writeln!(
            s,
            "\n{}: {} bootstrap replicates failed to fit and are left out.",
            m.method.label(),
            m.failed_replicates
        );
    }
    for note in &a.notes {
        let _ = writeln!(s, "\nNote: {note}");
    }
    s
}

/// Writes everything a fit produces into `dir` (created if needed): `runs.json` (the input),
/// `report.md`, `report.json` and the plots; returns the paths written.
pub fn write_all(dir: &Path, runs: &[crate::Run], a: &Analysis) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| ScalingError::io(dir, e))?;
    let runs_json = serde_json::to_vec_pretty(runs)
        .map_err(|e| ScalingError::Fit(format!("serialising the runs: {e}")))?;
    lm_core::fsutil::write_atomic(&dir.join("runs.json"), &runs_json)?;
    write_report(dir, a)?;
    let mut paths = vec![
        dir.join("runs.json"),
        dir.join("report.md"),
        dir.join("report.json"),
    ];
    paths.extend(crate::plot::write_plots(dir, runs, a)?);
    Ok(paths)
}

/// Writes `report.md` and `report.json` into `dir` (atomically).
pub fn write_report(dir: &Path, a: &Analysis) -> Result<()> {
    let json = serde_json::to_vec_pretty(a)
        .map_err(|e| ScalingError::Fit(format!("serialising the report: {e}")))?;
    lm_core::fsutil::write_atomic(&dir.join("report.json"), &json)?;
    lm_core::fsutil::write_atomic(&dir.join("report.md"), markdown(a).as_bytes())?;
    Ok(())
}
