use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::params::{FlatTensor, NamedTensors, map_named_params};

/// AdamW hyper-parameters (handout defaults: betas (0.9, 0.95)… set per run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// The handout's update of one (flat) tensor at step `t`: returns the new parameter and
/// moments. Shared by the per-parameter and the fused step, so both compute the same values.
#[allow(clippy::too_many_arguments)]
pub(super) fn adamw_rule<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    state: Moments<B>,
    t: u64,
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    weight_decay: f64,
) -> (Tensor<B, 1>, Moments<B>) {
    let m = state.m.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
    let v = state.v.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
    let alpha_t = step_size(lr, b1, b2, t);
    let stepped = param - (m.clone() / v.clone().sqrt().add_scalar(eps)).mul_scalar(alpha_t);
    let decayed = stepped.clone() - stepped.mul_scalar(lr * weight_decay);
    (decayed, Moments { m, v })
}

/// `α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ)`: the learning rate with the bias correction folded in.
pub(super) fn step_size(lr: f64, b1: f64, b2: f64, t: u64) -> f64 {
    let t = t as i32;
    lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t))
}

/// First and second moments of one parameter, flattened.
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    pub m: Tensor<B, 1>,
    pub v: Tensor<B, 1>,
}

/// The handout's AdamW (Algorithm 1): bias correction folded into the step size
/// `α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ)`, eps added to `√v`, and weight decay applied after the Adam
/// update with the base rate. This is not `torch.optim.AdamW` (see the golden README §6).
///
/// State is keyed by parameter name, so it can be saved and resumed by name. The fused
/// step ([`Self::step_module_fused`]) keeps it as flat buffers instead (two per chunk of
/// parameters); the two forms convert on demand ([`Self::moments_by_name`]).
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    /// Number of steps taken so far (t of the last step).
    pub step: u64,
    /// Per-parameter state (the per-parameter step, and state loaded from a checkpoint).
    pub moments: BTreeMap<String, Moments<B>>,
    /// Flat state of the fused step: per chunk, its parameters' moments end to end.
    pub(super) fused: Vec<FusedMoments<B>>,
    /// Largest number of values the fused step concatenates into one buffer.
    pub(super) fused_chunk: usize,
    /// Parameters of at least this many values are updated in their own buffers.
    pub(super) alone_min: usize,
}

/// Values per flat buffer of the fused step (2²⁸ f32 = 1 GiB). Models up to ~268M
/// parameters are one chunk; at the lab-2 xl size (3.4B parameters, 13.6 GB per full copy)
/// chunking keeps the step's temporaries to a few GiB instead of several full copies, which
/// ran an 80 GB card out of memory.
pub const FUSED_CHUNK_VALUES: usize = 1 << 28;

/// Parameters of at least this many values are updated in their own buffers by the fused
/// step (no copy into a flat buffer; its own launches instead). None by default: on an H100
/// (docs/PERF.md run 8) that was faster only at the large size (27.1 against 30.8 ms per
/// step with 8M+ values alone), as fast on small and medium, and slower on xl.
pub const ALONE_MIN_VALUES: usize = usize::MAX;

/// `var` parsed as a number of values (at least 1), else `default`.
fn env_values(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(default, |v| v.max(1))
}

/// The fused step's chunk limit: [`FUSED_CHUNK_VALUES`], or `LM_ADAMW_CHUNK_VALUES` when set
/// (1: every parameter updated in its own buffers, nothing concatenated — fewer passes over
/// memory, more launches).
fn default_fused_chunk() -> usize {
    static VALUES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *VALUES.get_or_init(|| env_values("LM_ADAMW_CHUNK_VALUES", FUSED_CHUNK_VALUES))
}

/// [`ALONE_MIN_VALUES`], or `LM_ADAMW_ALONE_VALUES` when set.
fn default_alone_min() -> usize {
    static VALUES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *VALUES.get_or_init(|| env_values("LM_ADAMW_ALONE_VALUES", ALONE_MIN_VALUES))
}

/// One chunk of the fused step's state: `(name, numel)` in order, and the concatenated
/// moments.
#[derive(Debug, Clone)]
pub(super) struct FusedMoments<B: Backend> {
    pub layout: Vec<(String, usize)>,
    pub m: Tensor<B, 1>,
    pub v: Tensor<B, 1>,
}

impl<B: Backend> FusedMoments<B> {
    /// Each parameter's slice of the flat moments, by name.
    fn by_name(&self) -> impl Iterator<Item = (String, Moments<B>)> + '_ {
        let mut offset = 0;
        self.layout.iter().map(move |(name, n)| {
            let range = offset..offset + n;
            offset += n;
            let m = self.m.clone().slice(range.clone());
            let v = self.v.clone().slice(range);
            (name.clone(), Moments { m, v })
        })
    }
}

impl<B: Backend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            moments: BTreeMap::new(),
            fused: Vec::new(),
            fused_chunk: default_fused_chunk(),
            alone_min: default_alone_min(),
        }
    }

    /// The same optimiser with the fused step's buffers limited to `values` values each (a
    /// parameter larger than that gets a buffer of its own).
    pub fn with_fused_chunk(mut self, values: usize) -> Self {
        self.fused_chunk = values.max(1);
        self
    }

    /// The same optimiser with every parameter of at least `values` values updated in its
    /// own buffers by the fused step (`usize::MAX`: all concatenated, within the chunk limit).
    pub fn with_alone_min(mut self, values: usize) -> Self {
        self.alone_min = values.max(1);
        self
    }

    /// How many flat buffers (pairs of moments) the last fused step kept; 0 after a
    /// per-parameter step.
    pub fn fused_chunks(&self) -> usize {
        self.fused.len()
    }

    /// The moments by parameter name, whichever form they are kept in.
    pub fn moments_by_name(&self) -> BTreeMap<String, Moments<B>> {
        let mut out = self.moments.clone();
        for chunk in &self.fused {
            out.extend(chunk.by_name());
        }
        out
    }

    /// Moves the fused step's flat state into the per-name map (for the per-parameter step,
    /// or a fused step over a different parameter set).
    pub(super) fn unfuse(&mut self) {
        for chunk in std::mem::take(&mut self.fused) {
            self.moments.extend(chunk.by_name());
        }
    }

    /// Starts step `t = step + 1`; call once per step before [`Self::update`].
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// Updates one parameter at the current step with learning rate `lr`.
    pub fn update(
        &mut self,
        name: &str,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        lr: f64,
    ) -> Tensor<B, 1> {
        assert!(self.step > 0, "AdamW::update called before begin_step");
        self.unfuse();
        let AdamWConfig {
            betas: (b1, b2),
            eps,
            weight_decay,
            ..
        } = self.config;
        let state = self.moments.remove(name).unwrap_or_else(|| Moments {
            m: param.zeros_like(),
            v: param.zeros_like(),
        });
        let (updated, state) =
            adamw_rule(param, grad, state, self.step, lr, b1, b2, eps, weight_decay);
        self.moments.insert(name.to_string(), state);
        updated
    }

    /// One optimiser step over every parameter of `module` that has a gradient.
    pub fn step_module<AB, M>(&mut self, module: M, grads: &NamedTensors<B>, lr: f64) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: Module<AB>,
    {
        self.begin_step();
        map_named_params(module, &mut |name, param| match grads.get(name) {
            Some(grad) => {
                let inner = param.values.inner();
                let updated = self.update(name, inner, grad.values.clone(), lr);
                FlatTensor {
                    values: Tensor::from_inner(updated),
                    shape: param.shape,
                }
            }
            None => param,
        })
    }
}
