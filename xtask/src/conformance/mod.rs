//! The golden conformance runner: runs every case of a golden directory (format of
//! shared/golden/README.md) through lm-core and compares with the stored results.

pub mod compare;
pub mod ctx;
pub mod manifest;
mod ops;
pub mod report;
pub mod tensors;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use lm_core::config::Precision;

use compare::{TensorCheck, compare};
use ctx::CaseCtx;
use manifest::{CaseSpec, Manifest};
use tensors::HostTensor;

/// The golden ops of each assignment (shared/golden/README.md §4).
pub fn lab_ops(assignment: u8) -> Option<&'static [&'static str]> {
    Some(match assignment {
        1 => &[
            "linear",
            "embedding",
            "rmsnorm",
            "silu",
            "swiglu",
            "softmax",
            "rope",
            "sdpa",
            "mha",
            "mha_rope",
            "transformer_block",
            "transformer_lm",
            "cross_entropy",
            "lm_train_step",
            "gradient_clipping",
            "adamw",
            "lr_cosine",
        ],
        2 => &["flash_attention"],
        3 => &["isoflops_fit"],
        5 => &[
            "compute_entropy",
            "log_probs_from_logits",
            "masked_normalize",
            "masked_mean",
            "sft_microbatch_train_step",
            "compute_group_normalized_rewards",
            "compute_naive_policy_gradient_loss",
            "compute_grpo_clip_loss",
            "compute_policy_gradient_loss",
            "grpo_microbatch_train_step",
            "dpo_loss",
            // The pretrained-model engine lab 5 stands on (issue 9).
            "qwen2_forward",
            "llama_forward",
            "gguf_forward",
        ],
        _ => return None,
    })
}

/// `$LM_SHARED/golden`, else `../shared/golden` (the layout of CI and of a fresh checkout).
pub fn default_golden_dir() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
        .join("golden")
}

/// Backends the runner can use; each but ndarray needs its cargo feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Ndarray,
    Wgpu,
    Cuda,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub golden: PathBuf,
    pub backend: BackendKind,
    /// Op names or case names to run; empty = every case.
    pub filters: Vec<String>,
    /// Multiplies every rtol and atol (for backends that are not IEEE f32, e.g. TF32 GEMMs).
    pub tol_factor: f64,
    /// The matrix products' precision: `F32` (strict; the golden tolerances) or `Tf32`
    /// (TF32 GEMMs on CUDA, checked [`TF32_TOLERANCE_FACTOR`] times looser).
    pub precision: Precision,
}

/// How much looser than the golden tolerances the `tf32` mode is checked. TF32 rounds every
/// GEMM input to a 10-bit mantissa (unit roundoff 2⁻¹¹ ≈ 4.9e-4, against f32's 6e-8), so a
/// product carries ~1e-3 relative error where the f32 cases allow 1e-5 (rtol) and 1e-6 (atol).
pub const TF32_TOLERANCE_FACTOR: f64 = 1000.0;

impl Options {
    /// The factor every rtol and atol is multiplied by: `tol_factor` × the precision's.
    pub fn tolerance_factor(&self) -> f64 {
        let precision = match self.precision {
            Precision::Tf32 => TF32_TOLERANCE_FACTOR,
            Precision::F32 | Precision::Bf16Mixed => 1.0,
        };
        self.tol_factor * precision
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub op: String,
    pub name: String,
    pub checks: Vec<TensorCheck>,
    /// Set when the case could not run at all (unimplemented op, bad input, panic).
    pub error: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(TensorCheck::passed)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
    pub unimplemented: BTreeSet<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(CaseResult::passed)
    }
}

/// Runs `$body` with the type alias `$B` bound to the autodiff backend of `$kind`, or fails
/// naming the cargo feature this build lacks.
#[macro_export]
macro_rules! with_autodiff_backend {
    ($kind:expr, |$B:ident| $body:expr) => {
        match $kind {
            #[cfg(feature = "ndarray")]
            $crate::conformance::BackendKind::Ndarray => {
                type $B = lm_core::backends::NdArrayAutodiff;
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::conformance::BackendKind::Wgpu => {
                type $B = lm_core::backends::WgpuAutodiff;
                $body
            }
            // `LM_CUDA_FUSION=0`: without burn's fusion layer (each op launched as issued).
            #[cfg(feature = "cuda")]
            $crate::conformance::BackendKind::Cuda if lm_core::backends::cuda_fusion(true) => {
                type $B = lm_core::backends::CudaAutodiff;
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::conformance::BackendKind::Cuda => {
                type $B = lm_core::backends::CudaUnfusedAutodiff;
                $body
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "this xtask was built without the `{0}` backend: rebuild it with `--features {0}`",
                format!("{other:?}").to_lowercase()
            ),
        }
    };
}

/// Runs the selected cases, calling `on_case` after each (for live output).
pub fn run(opts: &Options, on_case: &mut dyn FnMut(&CaseResult)) -> anyhow::Result<Report> {
    // Matrix products as a model config gives them: cuBLASLt on CUDA, in strict f32 or TF32
    // (burn's matmul elsewhere, where both modes are f32). The op cases take f32 inputs, so
    // bf16-mixed is checked by training instead (its loss curve against f32's).
    if opts.precision == Precision::Bf16Mixed {
        anyhow::bail!(
            "--precision bf16-mixed: the golden cases run in f32 or tf32; bf16-mixed is checked \
             by training against f32 (docs/lab2-systems.md, \"Mixed precision\")"
        );
    }
    lm_core::kernels::set_matmul_policy(Default::default(), opts.precision);
    let manifest = Manifest::load(&opts.golden)?;
    let cases = select(&manifest.cases, &opts.filters)?;
    with_autodiff_backend!(opts.backend, |B| run_on::<B>(
        opts,
        &cases,
        Default::default(),
        on_case
    ))
}

/// Cases whose op or name is in `filters` (all when empty); a filter that matches nothing is
/// an error, so a typo cannot pass silently.
fn select<'m>(cases: &'m [CaseSpec], filters: &[String]) -> anyhow::Result<Vec<&'m CaseSpec>> {
    if filters.is_empty() {
        return Ok(cases.iter().collect());
    }
    for f in filters {
        if !cases.iter().any(|c| &c.op == f || &c.name == f) {
            bail!("--filter {f}: no case has this op or name");
        }
    }
    Ok(cases
        .iter()
        .filter(|c| filters.iter().any(|f| &c.op == f || &c.name == f))
        .collect())
}

fn run_on<B: AutodiffBackend>(
    opts: &Options,
    cases: &[&CaseSpec],
    device: B::Device,
    on_case: &mut dyn FnMut(&CaseResult),
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut files: BTreeMap<String, BTreeMap<String, HostTensor>> = BTreeMap::new();
    // Panics inside a case become that case's failure; keep their default report quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in cases {
        let result = run_case::<B>(opts, case, &mut files, &device);
        if matches!(&result.error, Some(e) if e.starts_with("op not implemented")) {
            report.unimplemented.insert(case.op.clone());
        }
        on_case(&result);
        report.results.push(result);
    }
    std::panic::set_hook(default_hook);
    Ok(report)
}

fn run_case<B: AutodiffBackend>(
    opts: &Options,
    case: &CaseSpec,
    files: &mut BTreeMap<String, BTreeMap<String, HostTensor>>,
    device: &B::Device,
) -> CaseResult {
    let mut result = CaseResult {
        op: case.op.clone(),
        name: case.name.clone(),
        checks: vec![],
        error: None,
    };
    let Some(op) = ops::lookup::<B>(&case.op) else {
        result.error = Some(format!("op not implemented: `{}`", case.op));
        return result;
    };
    let tensors = match case_tensors(&opts.golden, case, files) {
        Ok(t) => t,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return result;
        }
    };
    let mut ctx = CaseCtx::<B>::new(case, &opts.golden, &tensors, device.clone());
    match catch_unwind(AssertUnwindSafe(|| op(&mut ctx))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => result.error = Some(format!("{e:#}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            result.error = Some(format!("panicked: {msg}"));
        }
    }
    if result.error.is_some() {
        return result;
    }
    let compared = case
        .outputs
        .iter()
        .map(|n| format!("outputs.{n}"))
        .chain(case.grads.iter().map(|n| format!("grads.{n}")));
    for key in compared {
        let (rtol, atol) = case.tolerance(&key);
        let check = match (ctx.produced.get(&key), tensors.get(&key)) {
            (_, None) => TensorCheck::failed(&key, "the golden file lacks this tensor"),
            (None, _) => TensorCheck::failed(&key, "our op did not produce it"),
            (Some(a), Some(e)) => {
                let factor = opts.tolerance_factor();
                compare(&key, a, e, rtol * factor, atol * factor)
            }
        };
        result.checks.push(check);
    }
    result
}

/// The case's tensors with the prefix stripped (`inputs.x`), reading each file once.
fn case_tensors(
    dir: &Path,
    case: &CaseSpec,
    files: &mut BTreeMap<String, BTreeMap<String, HostTensor>>,
) -> anyhow::Result<BTreeMap<String, HostTensor>> {
    if !files.contains_key(&case.file) {
        let all = tensors::read_file(&dir.join(&case.file))
            .with_context(|| format!("case {}", case.name))?;
        files.insert(case.file.clone(), all);
    }
    let all = &files[&case.file];
    Ok(all
        .range(case.prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&case.prefix))
        .map(|(k, v)| (k[case.prefix.len()..].to_string(), v.clone()))
        .collect())
}
