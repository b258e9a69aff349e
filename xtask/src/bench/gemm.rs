//! `cargo xtask bench gemm`: the matrix products of the course's models (profiling-harness
//! sizes, batch 4 × context 512 = 2048 tokens) through our matmul (cuBLASLt on CUDA), burn's
//! own matmul and PyTorch's `torch.matmul` (bench/pytorch_gemm.py, same process tree, same
//! GPU), in TFLOP/s with the ratio to PyTorch.
//!
//! Each product is laid out as training meets it: `fwd` is `x · Wᵀ` (W `[out, in]` read
//! transposed in place), `dx` is `dY · W`, `dw` is `dYᵀ · X`.

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor};
use lm_core::config::{MatmulKernel, Precision};
use lm_core::kernels::{matmul, set_matmul_policy};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DeviceTiming, cell, device_seconds, peer_records};
use crate::conformance::BackendKind;

/// The profiling harness's sizes: (name, d_model, d_ff).
const SIZES: [(&str, usize, usize); 4] = [
    ("small", 768, 3072),
    ("medium", 1024, 4096),
    ("large", 1280, 5120),
    ("xl", 2560, 10240),
];
const VOCAB: usize = 10_000;
const TOKENS: usize = 4 * 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fwd,
    Dx,
    Dw,
}

/// One product `[m, k] · [k, n]` in one precision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub size: String,
    pub layer: String,
    pub kind: Kind,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// f32 (strict), tf32 or bf16.
    pub precision: String,
}

impl Case {
    fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64
    }

    fn label(&self) -> String {
        format!(
            "{} {} {:?} {}x{}x{}",
            self.size, self.layer, self.kind, self.m, self.n, self.k
        )
        .to_lowercase()
    }
}

#[derive(Debug, Clone)]
pub struct GemmBenchOptions {
    pub backend: BackendKind,
    pub sizes: Vec<String>,
    pub precisions: Vec<String>,
    pub kinds: Vec<Kind>,
    /// Also time burn's own matmul (slow to autotune on CUDA: every shape is tuned).
    pub with_burn: bool,
    /// The PyTorch script, or none to skip the peer.
    pub peer: Option<(String, std::path::PathBuf)>,
}

/// The cases for the chosen sizes, precisions and kinds.
pub fn cases(opts: &GemmBenchOptions) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for size in &opts.sizes {
        let Some(&(name, d, d_ff)) = SIZES.iter().find(|(n, ..)| n == size) else {
            bail!("unknown size {size:?} (small, medium, large, xl)");
        };
        // (layer, in, out) of each linear map.
        let layers = [
            ("attn-proj", d, d),
            ("ffn-up", d, d_ff),
            ("ffn-down", d_ff, d),
            ("lm-head", d, VOCAB),
        ];
        for precision in &opts.precisions {
            if !["f32", "tf32", "bf16"].contains(&precision.as_str()) {
                bail!("unknown precision {precision:?} (f32, tf32, bf16)");
            }
            for (layer, d_in, d_out) in layers {
                for &kind in &opts.kinds {
                    let (m, n, k) = match kind {
                        Kind::Fwd => (TOKENS, d_out, d_in),
                        Kind::Dx => (TOKENS, d_in, d_out),
                        Kind::Dw => (d_out, d_in, TOKENS),
                    };
                    cases.push(Case {
                        size: name.into(),
                        layer: layer.into(),
                        kind,
                        m,
                        n,
                        k,
                        precision: precision.clone(),
                    });
                }
            }
        }
    }
    Ok(cases)
}

/// Our product (`ours`: the policy's path; else burn's matmul) timed on `B`.
fn measure<B: Backend>(case: &Case, ours: bool, device: &B::Device) -> Result<f64> {
    let (dtype, precision) = match case.precision.as_str() {
        "bf16" => (DType::BF16, Precision::Bf16Mixed),
        "tf32" => (DType::F32, Precision::Tf32),
        _ => (DType::F32, Precision::F32),
    };
    if !B::supports_dtype(device, dtype) {
        bail!("{dtype:?} unsupported on this backend");
    }
    let kernel = if ours {
        MatmulKernel::Auto
    } else {
        MatmulKernel::Burn
    };
    set_matmul_policy(kernel, precision);
    let random = |shape: [usize; 2]| {
        Tensor::<B, 2>::random(shape, Distribution::Normal(0.0, 1.0), device).cast(dtype)
    };
    let (m, n, k) = (case.m, case.n, case.k);
    // The operands as training lays them out (see the module docs).
    let (lhs, rhs) = match case.kind {
        Kind::Fwd => (random([m, k]), random([n, k]).transpose()),
        Kind::Dx => (random([m, k]), random([k, n])),
        Kind::Dw => (random([k, m]).transpose(), random([k, n])),
    };
    // Synchronised every 10 products only, so the host clock sees queued work, not one
    // round trip per product.
    let timing = DeviceTiming {
        warmup: 3,
        min_calls: 5,
        min_seconds: 0.2,
        sync_every: 10,
    };
    let seconds = device_seconds::<B>(device, timing, || {
        let _ = matmul(lhs.clone(), rhs.clone());
        Ok(())
    })?;
    Ok(seconds * 1e3)
}

fn tflops(case: &Case, ms: Option<f64>) -> Option<f64> {
    ms.map(|ms| case.flops() / (ms * 1e-3) / 1e12)
}

/// Runs every case (PyTorch first, in its own process, then ours) and prints the table and
/// one `JSON` line per case.
pub fn run(opts: &GemmBenchOptions) -> Result<()> {
    let cases = cases(opts)?;
    let peer = match &opts.peer {
        Some((python, script)) => Some(peer_records(python, script, &cases)?),
        None => None,
    };
    println!(
        "{:<36} {:>5} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "product", "prec", "ours TF/s", "burn TF/s", "torch TF/s", "ours/pt", "ours/burn"
    );
    crate::with_autodiff_backend!(opts.backend, |B| {
        type I = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        let device = Default::default();
        for (i, case) in cases.iter().enumerate() {
            let ours_ms = measure::<I>(case, true, &device);
            let burn_ms = opts
                .with_burn
                .then(|| measure::<I>(case, false, &device).ok())
                .flatten();
            let ours_ms = match ours_ms {
                Ok(ms) => Some(ms),
                Err(e) => {
                    eprintln!("{}: {e:#}", case.label());
                    None
                }
            };
            let torch_ms = peer.as_ref().and_then(|p| p[i]["ms"].as_f64());
            let (ours, burn, torch) = (
                tflops(case, ours_ms),
                tflops(case, burn_ms),
                tflops(case, torch_ms),
            );
            let ratio = |a: Option<f64>, b: Option<f64>| cell(a.zip(b).map(|(a, b)| a / b), 2);
            println!(
                "{:<36} {:>5} {:>10} {:>10} {:>10} {:>8} {:>8}",
                case.label(),
                case.precision,
                cell(ours, 1),
                cell(burn, 1),
                cell(torch, 1),
                ratio(ours, torch),
                ratio(ours, burn),
            );
            println!(
                "JSON {}",
                json!({"case": case, "ours_ms": ours_ms, "burn_ms": burn_ms, "torch_ms": torch_ms,
                       "ours_tflops": ours, "burn_tflops": burn, "torch_tflops": torch})
            );
        }
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_each_layer_kind_and_precision_with_training_shapes() {
        let opts = GemmBenchOptions {
            backend: BackendKind::Ndarray,
            sizes: vec!["small".into()],
            precisions: vec!["f32".into(), "bf16".into()],
            kinds: vec![Kind::Fwd, Kind::Dw],
            with_burn: false,
            peer: None,
        };
        let all = cases(&opts).unwrap();
        assert_eq!(all.len(), 4 * 2 * 2);
        let ffn_up_dw = all
            .iter()
            .find(|c| c.layer == "ffn-up" && c.kind == Kind::Dw)
            .unwrap();
        // dW of the up projection: [d_ff, tokens] · [tokens, d_model].
        assert_eq!((ffn_up_dw.m, ffn_up_dw.n, ffn_up_dw.k), (3072, 768, TOKENS));
        assert!(
            cases(&GemmBenchOptions {
                sizes: vec!["huge".into()],
                ..opts
            })
            .is_err()
        );
    }
}
