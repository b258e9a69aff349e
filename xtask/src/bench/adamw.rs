//! `cargo xtask bench adamw`: the lab-2 harness's optimizer phase alone — gradients clipped
//! to a global norm of 1, then AdamW over every parameter of a course size — with fixed
//! random gradients, in each way the fused step can lay out its buffers, beside PyTorch's
//! `clip_grad_norm_` + `torch.optim.AdamW(fused=True)` on the same parameter shapes
//! (bench/pytorch_adamw.py, run first in its own process). Reports ms per step (each step
//! ends with a device sync, as in the harness), the ratio to PyTorch, and the rate of the
//! step's least traffic: 8 f32 passes over the parameters (the norm reads the gradients;
//! the update reads parameter, gradient and both moments and writes three).

use anyhow::{Result, bail};
use burn::tensor::{Distribution, Tensor};
use lm_core::TransformerLm;
use lm_core::config::Precision;
use lm_core::optim::{AdamW, AdamWConfig, FUSED_CHUNK_VALUES};
use lm_core::params::{FlatTensor, NamedTensors, named_params};
use lm_systems::profile::ProfileCase;
use serde::Serialize;
use serde_json::json;

use super::{DeviceTiming, cell, device_seconds, peer_records};
use crate::conformance::BackendKind;

const VOCAB: usize = 10_000;
/// Each step synchronised, as the harness's optimizer phase is.
const TIMING: DeviceTiming = DeviceTiming {
    warmup: 2,
    min_calls: 5,
    min_seconds: 0.5,
    sync_every: 1,
};

/// How the fused step lays out its flat buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every parameter concatenated into chunks of up to [`FUSED_CHUNK_VALUES`].
    Concat,
    /// Every parameter in its own buffers: nothing copied, one launch each.
    Alone,
    /// Parameters of at least this many values alone, the rest concatenated.
    AloneFrom(usize),
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "concat" => Ok(Self::Concat),
            "alone" => Ok(Self::Alone),
            _ => s
                .strip_prefix("alone-from-")
                .and_then(|n| n.parse().ok())
                .map(Self::AloneFrom)
                .ok_or_else(|| format!("unknown layout {s:?} (concat, alone, alone-from-N)")),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Concat => write!(f, "concat"),
            Self::Alone => write!(f, "alone"),
            Self::AloneFrom(n) => write!(f, "alone-from-{n}"),
        }
    }
}

impl Layout {
    fn optimizer<B: burn::tensor::backend::Backend>(self) -> AdamW<B> {
        let adamw = AdamW::new(AdamWConfig::default()).with_fused_chunk(FUSED_CHUNK_VALUES);
        match self {
            Self::Concat => adamw.with_alone_min(usize::MAX),
            Self::Alone => adamw.with_alone_min(1),
            Self::AloneFrom(n) => adamw.with_alone_min(n),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdamwBenchOptions {
    pub backend: BackendKind,
    pub sizes: Vec<String>,
    pub layouts: Vec<Layout>,
    /// The PyTorch script, or none to skip the peer.
    pub peer: Option<(String, std::path::PathBuf)>,
}

/// The parameter shapes of one size, as the peer builds them.
#[derive(Debug, Clone, Serialize)]
struct Case {
    size: String,
    shapes: Vec<Vec<usize>>,
}

fn model_config(size: &str) -> Result<lm_core::TransformerConfig> {
    let case = ProfileCase {
        size: size.into(),
        context: 512,
        batch: 1,
        vocab: VOCAB,
        precision: Precision::F32,
        attention: Default::default(),
        warmup: 1,
        steps: 1,
        seed: 0,
    };
    Ok(case.model_config()?)
}

/// Mean seconds of one optimizer step over `model`'s parameters with fixed random gradients.
fn measure<AB: burn::tensor::backend::AutodiffBackend>(
    model: &TransformerLm<AB>,
    layout: Layout,
    timing: DeviceTiming,
    device: &AB::Device,
) -> Result<f64> {
    let grads: NamedTensors<AB::InnerBackend> = named_params(model)
        .into_iter()
        .map(|(name, p)| {
            let values = Tensor::random([p.numel()], Distribution::Normal(0.0, 1e-3), device);
            (
                name,
                FlatTensor {
                    values,
                    shape: p.shape,
                },
            )
        })
        .collect();
    let mut optimizer = layout.optimizer::<AB::InnerBackend>();
    let mut current = Some(model.clone());
    device_seconds::<AB>(device, timing, || {
        let module = current
            .take()
            .expect("the model is put back after each step");
        let (next, _) = optimizer.step_module_fused(module, &grads, 1e-4, Some(1.0));
        current = Some(next);
        Ok(())
    })
}

/// Runs every size and layout (PyTorch first) and prints the table and one `JSON` line per
/// row.
pub fn run(opts: &AdamwBenchOptions) -> Result<()> {
    if opts.layouts.is_empty() {
        bail!("no layouts to time");
    }
    crate::with_autodiff_backend!(opts.backend, |B| {
        let device = Default::default();
        let build = |size: &str| -> Result<TransformerLm<B>> {
            Ok(TransformerLm::<B>::new(&model_config(size)?, 0, &device)?)
        };
        // Shapes first, each model dropped again: the peer runs before any of our buffers
        // exist (xl's state alone is ~54 GB on each side).
        let mut cases = Vec::new();
        for size in &opts.sizes {
            let shapes = named_params(&build(size)?)
                .into_values()
                .map(|p| p.shape)
                .collect();
            cases.push(Case {
                size: size.clone(),
                shapes,
            });
        }
        let peer = match &opts.peer {
            Some((python, script)) => Some(peer_records(python, script, &cases)?),
            None => None,
        };
        println!(
            "{:<7} {:>9} {:<20} {:>9} {:>9} {:>8} {:>9}",
            "size", "params", "layout", "ours ms", "torch ms", "ours/pt", "ours GB/s"
        );
        for (i, case) in cases.iter().enumerate() {
            let model = build(&case.size)?;
            let values: usize = case
                .shapes
                .iter()
                .map(|s| s.iter().product::<usize>())
                .sum();
            let torch_ms = peer.as_ref().and_then(|p| p[i]["ms"].as_f64());
            for &layout in &opts.layouts {
                let ours_ms = match measure(&model, layout, TIMING, &device) {
                    Ok(s) => Some(s * 1e3),
                    Err(e) => {
                        eprintln!("{} {layout}: {e:#}", case.size);
                        None
                    }
                };
                // Time ratio inverted: above 1, ours is faster.
                let speedup = ours_ms.zip(torch_ms).map(|(o, t)| t / o);
                let rate = ours_ms.map(|ms| 8.0 * 4.0 * values as f64 / (ms * 1e-3) / 1e9);
                println!(
                    "{:<7} {:>8.1}M {:<20} {:>9} {:>9} {:>8} {:>9}",
                    case.size,
                    values as f64 / 1e6,
                    layout.to_string(),
                    cell(ours_ms, 2),
                    cell(torch_ms, 2),
                    cell(speedup, 2),
                    cell(rate, 0),
                );
                println!(
                    "JSON {}",
                    json!({"size": case.size, "parameters": values, "tensors": case.shapes.len(),
                           "layout": layout.to_string(), "ours_ms": ours_ms,
                           "torch_ms": torch_ms, "speedup": speedup, "ours_gb_per_s": rate})
                );
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_and_print_back() {
        for text in ["concat", "alone", "alone-from-1048576"] {
            assert_eq!(text.parse::<Layout>().unwrap().to_string(), text);
        }
        assert!("alone-from-x".parse::<Layout>().is_err());
        assert!("packed".parse::<Layout>().is_err());
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn every_layout_times_a_step_on_the_cpu() {
        type B = lm_core::backends::NdArrayAutodiff;
        let device = Default::default();
        let cfg = lm_core::TransformerConfig::new(64, 16, 32, 2, 2, 64);
        let model = TransformerLm::<B>::new(&cfg, 0, &device).unwrap();
        let once = DeviceTiming {
            warmup: 1,
            min_calls: 2,
            min_seconds: 0.0,
            sync_every: 1,
        };
        for layout in [Layout::Concat, Layout::Alone, Layout::AloneFrom(1000)] {
            let seconds = measure(&model, layout, once, &device).unwrap();
            assert!(seconds > 0.0 && seconds.is_finite(), "{layout}: {seconds}");
        }
    }
}
