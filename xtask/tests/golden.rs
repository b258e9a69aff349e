//! Runs the public golden set through the conformance runner, and checks that the runner
//! itself fails what it must fail.

use std::path::{Path, PathBuf};

use lm_core::config::Precision;
use xtask::conformance::{self, BackendKind, Options, Report};

/// `$LM_SHARED/golden`, default `../shared/golden` beside the workspace (as in CI).
fn golden_dir() -> PathBuf {
    let dir = match std::env::var_os("LM_SHARED") {
        Some(_) => conformance::default_golden_dir(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden"),
    };
    assert!(
        dir.join("manifest.json").is_file(),
        "golden set not found at {} (set LM_SHARED to the shared folder)",
        dir.display()
    );
    dir
}

fn run(golden: &Path, filters: &[&str]) -> anyhow::Result<Report> {
    run_in(golden, filters, Precision::F32)
}

fn run_in(golden: &Path, filters: &[&str], precision: Precision) -> anyhow::Result<Report> {
    let opts = Options {
        golden: golden.to_path_buf(),
        backend: BackendKind::Ndarray,
        filters: filters.iter().map(|s| s.to_string()).collect(),
        tol_factor: 1.0,
        precision,
    };
    conformance::run(&opts, &mut |_| {})
}

fn failures(report: &Report) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(conformance::report::row)
        .collect()
}

#[test]
fn every_assignment1_case_passes_on_ndarray() {
    let a1 = conformance::lab_ops(1).unwrap();
    let report = run(&golden_dir(), a1).unwrap();
    assert!(
        report.passed(),
        "failing cases:\n{}",
        failures(&report).join("\n")
    );
    for op in a1 {
        assert!(
            report.results.iter().any(|r| r.op == *op),
            "no case of {op} ran"
        );
    }
    assert!(
        report.results.len() >= 56,
        "only {} cases ran",
        report.results.len()
    );
}

/// A golden directory holding only the `linear` cases, with the expected `outputs.y` of
/// `linear/basic` changed by `delta` in its first element.
fn perturbed_linear_set(dir: &Path, delta: f32, op_name: &str) {
    let src = golden_dir();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("manifest.json")).unwrap()).unwrap();
    let mut cases: Vec<serde_json::Value> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "linear")
        .cloned()
        .collect();
    for c in &mut cases {
        c["op"] = op_name.into();
    }
    std::fs::create_dir_all(dir.join("cases")).unwrap();
    let out = serde_json::json!({"format": 1, "generator": "test", "seed": 0, "cases": cases});
    std::fs::write(dir.join("manifest.json"), out.to_string()).unwrap();

    let bytes = std::fs::read(src.join("cases/linear.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.clone(), v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    for (name, _, _, data) in &mut owned {
        if name == "linear/basic/outputs.y" {
            let v = f32::from_le_bytes(data[0..4].try_into().unwrap()) + delta;
            data[0..4].copy_from_slice(&v.to_le_bytes());
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("cases/linear.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_wrong_expected_value_fails_its_case_only() {
    let dir = tempfile::tempdir().unwrap();
    perturbed_linear_set(dir.path(), 1e-3, "linear");
    let report = run(dir.path(), &[]).unwrap();
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(failed, ["linear/basic"]);
    assert!(!report.passed());

    // A perturbation far below the tolerance still passes: the rule is the README's, not equality.
    let dir = tempfile::tempdir().unwrap();
    perturbed_linear_set(dir.path(), 1e-9, "linear");
    assert!(run(dir.path(), &[]).unwrap().passed());
}

/// The tf32 mode checks with the golden tolerances × TF32_TOLERANCE_FACTOR: an error of
/// 1e-3 in one output (TF32-sized) fails in f32 and passes in tf32, one of 10 fails in both;
/// bf16-mixed is refused with a message (its check is training).
#[test]
fn tf32_mode_loosens_the_tolerances_by_its_stated_factor() {
    assert_eq!(conformance::TF32_TOLERANCE_FACTOR, 1000.0);
    let dir = tempfile::tempdir().unwrap();
    perturbed_linear_set(dir.path(), 1e-3, "linear");
    assert!(!run_in(dir.path(), &[], Precision::F32).unwrap().passed());
    assert!(run_in(dir.path(), &[], Precision::Tf32).unwrap().passed());
    let dir = tempfile::tempdir().unwrap();
    perturbed_linear_set(dir.path(), 10.0, "linear");
    assert!(!run_in(dir.path(), &[], Precision::Tf32).unwrap().passed());
    let err = run_in(dir.path(), &[], Precision::Bf16Mixed).unwrap_err();
    assert!(err.to_string().contains("checked by training"), "{err}");
}

#[test]
fn unknown_ops_and_filters_fail() {
    let dir = tempfile::tempdir().unwrap();
    perturbed_linear_set(dir.path(), 0.0, "linear_v2");
    let report = run(dir.path(), &[]).unwrap();
    assert!(!report.passed());
    assert!(report.unimplemented.contains("linear_v2"));

    let err = run(&golden_dir(), &["lineer"]).unwrap_err().to_string();
    assert!(err.contains("lineer"), "{err}");

    let err = run(Path::new("/nonexistent/golden"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn case_names_select_single_cases() {
    let report = run(&golden_dir(), &["rope/official", "adamw/official"]).unwrap();
    let names: Vec<_> = report.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["rope/official", "adamw/official"]);
    assert!(report.passed());
}
