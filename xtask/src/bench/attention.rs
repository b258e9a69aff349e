//! `cargo xtask bench attention`: FlashAttention-2 (ours, CubeCL) against burn's unfused
//! attention on the same backend, one child process per (shape, implementation) so an
//! out-of-memory failure is reported as OOM instead of ending the run. PyTorch's SDPA runs
//! beside it from `bench/pytorch_attention.py` (see `bench/gpu_lab2.sh`), on the same grid.
//!
//! Each worker prints one JSON line: forward and forward+backward latency (the backward is
//! their difference, as in the PyTorch script), TFLOP/s by the FlashAttention-2 paper's
//! count, and on small shapes the largest errors of the output and of dQ/dK/dV against f32
//! attention computed on the CPU.

use anyhow::{Context, Result, bail};

use super::{DeviceTiming, device_seconds};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Distribution, Tensor};
use lm_core::layers::attention_with_lse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::conformance::BackendKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    /// Our FlashAttention-2 kernel.
    Flash,
    /// burn tensor ops: scores, mask, softmax, matmul.
    Plain,
}

/// One benchmark shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub bf16: bool,
    pub causal: bool,
}

impl Shape {
    /// Forward FLOPs: two `seq × seq × head_dim` matmuls per head, halved when causal.
    pub fn forward_flops(&self) -> f64 {
        let full = 4.0
            * (self.batch * self.heads) as f64
            * (self.seq as f64).powi(2)
            * self.head_dim as f64;
        if self.causal { full / 2.0 } else { full }
    }

    fn label(&self) -> String {
        format!(
            "b{} h{} s{} d{} {}{}",
            self.batch,
            self.heads,
            self.seq,
            self.head_dim,
            if self.bf16 { "bf16" } else { "f32" },
            if self.causal { " causal" } else { "" }
        )
    }
}

/// Which shapes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Grid {
    /// Two small f32 shapes: a smoke test on any backend.
    Quick,
    /// bf16 causal, seq 1024 / 4096 / 16384, head dims 64 and 128.
    Small,
    /// The target shapes: bf16 causal, seq 4096 / 8192 / 16384, head dims 64 and 128
    /// (the leaderboard's shape, batch 1 × 16 heads × 16384 × 64, among them).
    Large,
    /// Batch 1 (and 8), 16 heads, seq 128 … 16384, head dims 16 … 128, bf16 and f32, causal;
    /// the large grid first, so a time-limited run measures the target shapes.
    Full,
    /// bf16 causal, seq 1000 (not a tile multiple), every head dim 16, 32, … 128: the
    /// tensor-core kernels' error against plain f32 attention on each.
    HeadDims,
}

/// The shapes of `grid` (mirrored by `bench/pytorch_attention.py`).
pub fn grid(grid: Grid) -> Vec<Shape> {
    let shape = |batch, seq, head_dim, bf16| Shape {
        batch,
        heads: 16,
        seq,
        head_dim,
        bf16,
        causal: true,
    };
    let bf16_causal = |seqs: &[usize]| -> Vec<Shape> {
        seqs.iter()
            .flat_map(|&seq| [64, 128].map(|d| shape(1, seq, d, true)))
            .collect()
    };
    let mut shapes = match grid {
        Grid::Quick => return vec![shape(1, 128, 64, false), shape(1, 256, 32, false)],
        Grid::Small => return bf16_causal(&[1024, 4096, 16384]),
        Grid::Large => return bf16_causal(&[4096, 8192, 16384]),
        Grid::Full => bf16_causal(&[4096, 8192, 16384]),
        Grid::HeadDims => {
            return (1..=8).map(|i| shape(1, 1000, 16 * i, true)).collect();
        }
    };
    shapes.extend(bf16_causal(&[128, 512, 1024, 2048]));
    for head_dim in [16, 32] {
        shapes.push(shape(1, 4096, head_dim, true));
    }
    for seq in [1024, 4096] {
        shapes.push(shape(1, seq, 64, false));
        shapes.push(shape(8, seq, 64, true));
    }
    shapes
}

/// Runs every (shape, implementation) in a child process of this executable and prints a
/// table; JSON lines go to stdout as well for the docs script.
pub fn run(backend: BackendKind, shapes: Grid, plain_max_seq: usize) -> Result<()> {
    println!(
        "{:<28} {:>6} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "shape", "impl", "fwd ms", "fwd+bwd ms", "fwd+bwd TF/s", "max err", "grad err", "status"
    );
    for shape in grid(shapes) {
        for implementation in [Implementation::Flash, Implementation::Plain] {
            if implementation == Implementation::Plain && shape.seq > plain_max_seq {
                continue;
            }
            let args = vec![
                "bench-attention-worker".to_string(),
                "--shape".into(),
                serde_json::to_string(&shape)?,
                "--backend".into(),
                format!("{backend:?}").to_lowercase(),
                "--implementation".into(),
                format!("{implementation:?}").to_lowercase(),
            ];
            let record = match crate::child::run_json_worker(&args)? {
                Ok(record) => record,
                Err(why) => {
                    let status = if why == "OOM" { "OOM" } else { "failed" };
                    json!({"shape": shape, "impl": implementation, "status": status, "error": why})
                }
            };
            let num = |k: &str| record[k].as_f64().map_or("-".into(), |v| format!("{v:.3}"));
            let err = |k: &str| {
                record[k]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.1e}"))
            };
            println!(
                "{:<28} {:>6} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10}",
                shape.label(),
                format!("{implementation:?}").to_lowercase(),
                num("fwd_ms"),
                num("fwd_bwd_ms"),
                num("fwd_bwd_tflops"),
                err("max_err"),
                err("grad_err"),
                record["status"].as_str().unwrap_or("ok"),
            );
            println!("JSON {record}");
        }
    }
    Ok(())
}

/// The child process: one shape, one implementation, one JSON line.
pub fn worker(backend: BackendKind, shape: &str, implementation: Implementation) -> Result<()> {
    let shape: Shape = serde_json::from_str(shape).context("--shape")?;
    crate::with_autodiff_backend!(backend, |B| measure::<B>(
        shape,
        implementation,
        Default::default()
    ))
}

fn attend<B: Backend>(
    implementation: Implementation,
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
) -> Result<Tensor<B, 4>> {
    let scale = 1.0 / (q.dims()[3] as f64).sqrt();
    Ok(match implementation {
        Implementation::Flash => {
            let Some(result) =
                lm_core::kernels::flash_attention(q, k, v, causal, Some(scale as f32))
            else {
                bail!("this backend has no flash-attention kernel in this build");
            };
            result?.0
        }
        Implementation::Plain => attention_with_lse(q, k, v, causal, scale).0,
    })
}

/// Mean seconds per call of `f` over at least 0.3 s (and 3 calls) after 2 warm-up calls,
/// synchronised after each call.
fn time_it<B: Backend>(device: &B::Device, f: impl FnMut() -> Result<()>) -> Result<f64> {
    let timing = DeviceTiming {
        warmup: 2,
        min_calls: 3,
        min_seconds: 0.3,
        sync_every: 1,
    };
    device_seconds::<B>(device, timing, f)
}

/// `t` as a leaf of `B`'s autodiff graph.
fn tracked<B: AutodiffBackend>(t: &Tensor<B::InnerBackend, 4>) -> Tensor<B, 4> {
    Tensor::from_inner(t.clone()).require_grad()
}

/// The largest absolute error of the output and of dQ/dK/dV (for the output gradient
/// `d_o`) against f32 attention and its gradients computed on the CPU from the same
/// (rounded) inputs.
fn errors_against_cpu<B: AutodiffBackend>(
    implementation: Implementation,
    shape: Shape,
    [q, k, v, d_o]: [&Tensor<B::InnerBackend, 4>; 4],
) -> Result<(f64, f64)> {
    type Cpu = lm_core::backends::NdArrayAutodiff;
    let host = |t: &Tensor<B::InnerBackend, 4>| {
        let data = t.clone().cast(DType::F32).into_data();
        Tensor::<Cpu, 4>::from_data(data, &Default::default())
    };
    let (qa, ka, va) = (tracked::<B>(q), tracked::<B>(k), tracked::<B>(v));
    let ours = attend(
        implementation,
        qa.clone(),
        ka.clone(),
        va.clone(),
        shape.causal,
    )?;
    let grads = (ours.clone() * Tensor::from_inner(d_o.clone()))
        .sum()
        .backward();

    let (qh, kh, vh) = (
        host(q).require_grad(),
        host(k).require_grad(),
        host(v).require_grad(),
    );
    let scale = 1.0 / (shape.head_dim as f64).sqrt();
    let (reference, _) =
        attention_with_lse(qh.clone(), kh.clone(), vh.clone(), shape.causal, scale);
    let ref_grads = (reference.clone() * host(d_o)).sum().backward();

    let gap = |a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>| -> f64 {
        let e: f32 = (a - b).abs().max().into_scalar();
        e as f64
    };
    let out_err = gap(host(&ours.inner()), reference);
    let mut grad_err = 0.0f64;
    for (ours, reference) in [(qa, qh), (ka, kh), (va, vh)] {
        let (Some(g), Some(r)) = (ours.grad(&grads), reference.grad(&ref_grads)) else {
            bail!("attention input without a gradient");
        };
        grad_err = grad_err.max(gap(host(&g), Tensor::from_inner(r)));
    }
    Ok((out_err, grad_err))
}

fn measure<B: AutodiffBackend>(
    shape: Shape,
    implementation: Implementation,
    device: B::Device,
) -> Result<()> {
    let dims = [shape.batch, shape.heads, shape.seq, shape.head_dim];
    let dtype = if shape.bf16 { DType::BF16 } else { DType::F32 };
    let input = || {
        Tensor::<B::InnerBackend, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device)
            .cast(dtype)
    };
    let (q, k, v, d_o) = (input(), input(), input(), input());

    let fwd = time_it::<B::InnerBackend>(&device, || {
        attend(
            implementation,
            q.clone(),
            k.clone(),
            v.clone(),
            shape.causal,
        )
        .map(drop)
    })?;
    let fwd_bwd = time_it::<B>(&device, || {
        let (qa, ka, va) = (tracked::<B>(&q), tracked::<B>(&k), tracked::<B>(&v));
        let o = attend(implementation, qa, ka, va, shape.causal)?;
        let _grads = (o * Tensor::from_inner(d_o.clone())).sum().backward();
        Ok(())
    })?;
    // Either implementation against f32 attention computed on the CPU from the same
    // (rounded) inputs, a reference no device kernel (ours, cuBLASLt, burn's) takes part in;
    // its cost grows with the score matrices, so only up to 2²⁵ scores (the head-dims grid,
    // batch 1 × 16 heads × 1024² and smaller).
    let scores = shape.batch * shape.heads * shape.seq * shape.seq;
    let errors = if scores <= 1 << 25 {
        Some(errors_against_cpu::<B>(
            implementation,
            shape,
            [&q, &k, &v, &d_o],
        )?)
    } else {
        None
    };
    let (max_err, grad_err) = (errors.map(|e| e.0), errors.map(|e| e.1));
    let flops = shape.forward_flops();
    println!(
        "{}",
        json!({
            "shape": shape, "impl": implementation, "status": "ok",
            "fwd_ms": fwd * 1e3, "fwd_bwd_ms": fwd_bwd * 1e3, "bwd_ms": (fwd_bwd - fwd) * 1e3,
            "fwd_tflops": flops / fwd / 1e12, "fwd_bwd_tflops": 3.5 * flops / fwd_bwd / 1e12,
            "max_err": max_err, "grad_err": grad_err,
        })
    );
    Ok(())
}
