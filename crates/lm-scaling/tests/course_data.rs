//! The course's `data/isoflops_curves.json` (72 noiseless runs): every method, the report and
//! the plots; approach 3 must recover the law that generated the data.

use std::path::PathBuf;

use lm_scaling::{AnalysisOptions, Method, analyze, load_runs, plot, report};

fn course_runs() -> Vec<lm_scaling::Run> {
    let path = std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("cs336/a3/data/isoflops_curves.json");
    load_runs(&path).unwrap()
}

#[test]
fn approach_3_recovers_the_generating_law_and_outputs_are_written() {
    let runs = course_runs();
    assert_eq!(runs.len(), 72);
    let opts = AnalysisOptions {
        bootstrap: 16,
        ..Default::default()
    };
    let a = analyze(&runs, &opts).unwrap();
    assert_eq!(a.budgets, 9);
    assert_eq!(a.methods.len(), 3, "{:?}", a.notes);

    // Every loss is reproduced to ~1e-9 (the data has no noise), which pins the exponents:
    // α = 0.34 and β = 0.36 to well within 1e-3.
    let fit = a.surface.unwrap();
    assert!(fit.max_log_residual < 1e-6, "{fit:?}");
    assert!((fit.surface.alpha - 0.34).abs() < 1e-3, "{fit:?}");
    assert!((fit.surface.beta - 0.36).abs() < 1e-3, "{fit:?}");
    let surface = a
        .methods
        .iter()
        .find(|m| m.method == Method::LossSurface)
        .unwrap();
    assert!((surface.n_exponent.value - 0.36 / 0.70).abs() < 1e-3);

    // The IsoFLOP methods agree with the surface's optimum to within the grid's spacing.
    for m in &a.methods {
        assert!((m.n_exponent.value - 0.514).abs() < 0.06, "{m:?}");
        assert!((m.n_exponent.value + m.d_exponent.value - 1.0).abs() < 1e-6);
        assert_eq!(
            m.predictions.iter().map(|p| p.budget).collect::<Vec<_>>(),
            [1e23, 1e24]
        );
    }

    let dir = tempfile::tempdir().unwrap();
    report::write_report(dir.path(), &a).unwrap();
    let written = plot::write_plots(dir.path(), &runs, &a).unwrap();
    assert_eq!(written.len(), 4);
    for p in &written {
        assert!(
            std::fs::metadata(p).unwrap().len() > 1000,
            "{}",
            p.display()
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("scaling_laws.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("approach 3") && md.contains("1.000e23"), "{md}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["methods"].as_array().unwrap().len(), 3);
}
