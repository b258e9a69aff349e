//! The lab-2 profiling harness: forward, backward and optimizer-step times of the course's
//! model sizes (warm-up steps, then timed steps, mean ± std), with device memory.
//!
//! Each phase is followed by a device sync, so the times are what the phase costs alone (a
//! training loop overlaps them and runs a little faster). The PyTorch baseline
//! (`bench/pytorch_profile.py`) measures the same model the same way.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use lm_core::config::{AttentionKernel, Precision};
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, AdamWConfig};
use lm_core::params::named_grads;
use lm_core::summary::forward_flops_per_token;
use lm_core::{LmError, TransformerConfig, TransformerLm};
use serde::{Deserialize, Serialize};

/// A model shape of the course's table (vocab and context come from the case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSize {
    pub name: &'static str,
    pub d_model: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
}

/// `tiny` is lab 1's TinyStories model (quick on a CPU); the rest are the handout's table.
pub const SIZES: [ModelSize; 5] = [
    ModelSize::new("tiny", 512, 1344, 4, 16),
    ModelSize::new("small", 768, 3072, 12, 12),
    ModelSize::new("medium", 1024, 4096, 24, 16),
    ModelSize::new("large", 1280, 5120, 36, 20),
    ModelSize::new("xl", 2560, 10240, 32, 32),
];

impl ModelSize {
    const fn new(
        name: &'static str,
        d_model: usize,
        d_ff: usize,
        num_layers: usize,
        num_heads: usize,
    ) -> Self {
        Self {
            name,
            d_model,
            d_ff,
            num_layers,
            num_heads,
        }
    }

    pub fn by_name(name: &str) -> Result<Self, LmError> {
        SIZES
            .iter()
            .find(|s| s.name == name)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = SIZES.iter().map(|s| s.name).collect();
                LmError::config(
                    "size",
                    format!("unknown model size {name:?} (known: {known:?})"),
                )
            })
    }
}

/// One measurement: a model size at one context length and precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCase {
    pub size: String,
    pub context: usize,
    pub batch: usize,
    pub vocab: usize,
    pub precision: Precision,
    pub attention: AttentionKernel,
    pub warmup: usize,
    pub steps: usize,
    pub seed: u64,
}

impl ProfileCase {
    pub fn model_config(&self) -> Result<TransformerConfig, LmError> {
        let size = ModelSize::by_name(&self.size)?;
        let cfg = TransformerConfig {
            attention: self.attention,
            precision: self.precision,
            ..TransformerConfig::new(
                self.vocab,
                self.context,
                size.d_model,
                size.num_layers,
                size.num_heads,
                size.d_ff,
            )
        };
        cfg.validate()?;
        if self.steps == 0 || self.batch == 0 {
            return Err(LmError::config(
                "steps",
                "steps and batch must be at least 1",
            ));
        }
        Ok(cfg)
    }
}

/// Mean and sample standard deviation, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub mean_ms: f64,
    pub std_ms: f64,
}

impl Timing {
    pub fn of(seconds: &[f64]) -> Self {
        let n = seconds.len().max(1) as f64;
        let mean = seconds.iter().sum::<f64>() / n;
        let var = if seconds.len() > 1 {
            seconds.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean_ms: mean * 1e3,
            std_ms: var.sqrt() * 1e3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileResult {
    pub case: ProfileCase,
    pub parameters: usize,
    pub forward: Timing,
    pub backward: Timing,
    pub optimizer: Timing,
    /// Forward + backward + optimizer of each step.
    pub step: Timing,
    pub tokens_per_s: f64,
    /// Model FLOPs per second (6 × forward FLOPs per token, as the course counts).
    pub tflops: f64,
    /// Device bytes held by live tensors at the end of the forward (activations + state).
    pub memory_after_forward: Option<u64>,
    /// Device bytes the allocator reserved by the end (its peak).
    pub memory_reserved: Option<u64>,
    /// Loss of the first (untimed) step and of the last timed step, a sanity check that the
    /// steps computed something; none when not finite (JSON has no NaN), so a diverged or
    /// broken case is reported, not lost.
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
}

fn sync<B: AutodiffBackend>(device: &B::Device) -> Result<(), LmError> {
    B::sync(device).map_err(|e| LmError::Kernel(format!("device sync failed: {e:?}")))
}

/// Runs `case` on `device`: `warmup` untimed steps, then `steps` timed ones.
pub fn profile<B: AutodiffBackend>(
    case: &ProfileCase,
    device: &B::Device,
) -> Result<ProfileResult, LmError> {
    let cfg = case.model_config()?;
    let mut model = TransformerLm::<B>::new(&cfg, case.seed, device)?;
    let parameters = lm_core::params::named_params(&model)
        .values()
        .map(|t| t.values.dims()[0])
        .sum();
    let mut optimizer = AdamW::new(AdamWConfig::default());
    let tokens = Tensor::<B, 2, Int>::random(
        [case.batch, case.context + 1],
        Distribution::Uniform(0.0, case.vocab as f64),
        device,
    );
    let inputs = tokens.clone().slice([0..case.batch, 0..case.context]);
    let targets = tokens.slice([0..case.batch, 1..case.context + 1]);

    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let (mut memory_after_forward, mut first_loss, mut last_loss) = (None, None, None);
    let finite = |loss: f32| loss.is_finite().then_some(loss);
    sync::<B>(device)?;
    for step in 0..case.warmup + case.steps {
        let timed = step >= case.warmup;
        let mut mark = Instant::now();
        let mut lap = |phase: usize, times: &mut [Vec<f64>; 3]| -> Result<(), LmError> {
            sync::<B>(device)?;
            if timed {
                times[phase].push(mark.elapsed().as_secs_f64());
            }
            mark = Instant::now();
            Ok(())
        };
        let loss = cross_entropy(model.forward(inputs.clone()), targets.clone());
        lap(0, &mut times)?;
        if timed {
            memory_after_forward = lm_core::kernels::device_memory::<B>(device).map(|m| m.0);
        }
        let grads = named_grads(&model, &loss.backward());
        lap(1, &mut times)?;
        let (next, _norm) = optimizer.step_module_fused(model, &grads, 1e-4, Some(1.0));
        model = next;
        lap(2, &mut times)?;
        if step == 0 {
            first_loss = finite(loss.clone().into_scalar().elem::<f32>());
        }
        if step + 1 == case.warmup + case.steps {
            last_loss = finite(loss.into_scalar().elem::<f32>());
        }
    }
    let step_times: Vec<f64> = (0..case.steps)
        .map(|i| times.iter().map(|t| t[i]).sum())
        .collect();
    let step = Timing::of(&step_times);
    let tokens_per_s = (case.batch * case.context) as f64 / (step.mean_ms / 1e3);
    let flops_per_token = 3.0 * forward_flops_per_token(&cfg, case.context);
    Ok(ProfileResult {
        case: case.clone(),
        parameters,
        forward: Timing::of(&times[0]),
        backward: Timing::of(&times[1]),
        optimizer: Timing::of(&times[2]),
        step,
        tokens_per_s,
        tflops: flops_per_token * tokens_per_s / 1e12,
        memory_after_forward,
        memory_reserved: lm_core::kernels::device_memory::<B>(device).map(|m| m.1),
        first_loss,
        last_loss,
    })
}
