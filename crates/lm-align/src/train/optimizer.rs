//! Gradient accumulation over microbatches, global-norm clipping and the AdamW step: the
//! part every alignment loop shares.

use burn::module::{AutodiffModule, Module};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use lm_core::optim::{AdamW, AdamWConfig, clip_gradients};
use lm_core::params::{NamedTensors, named_grads};
use serde::{Deserialize, Serialize};

/// AdamW and clipping settings (the course's alignment defaults: β (0.9, 0.95), no weight
/// decay, clip 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; `0` turns clipping off.
    pub max_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-5,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
        }
    }
}

/// Sums the gradients of several microbatch losses, then takes one clipped AdamW step.
pub struct PolicyOptimizer<B: AutodiffBackend> {
    adamw: AdamW<B::InnerBackend>,
    config: OptimConfig,
    accumulated: Option<NamedTensors<B::InnerBackend>>,
}

impl<B: AutodiffBackend> PolicyOptimizer<B> {
    pub fn new(config: OptimConfig) -> Self {
        let adamw = AdamW::new(AdamWConfig {
            lr: config.lr,
            betas: config.betas,
            eps: config.eps,
            weight_decay: config.weight_decay,
        });
        Self {
            adamw,
            config,
            accumulated: None,
        }
    }

    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Back-propagates one microbatch's (already scaled) loss and adds its gradients.
    pub fn accumulate<M: Module<B>>(&mut self, model: &M, loss: Tensor<B, 1>) {
        let grads = named_grads(model, &loss.backward());
        self.accumulated = Some(match self.accumulated.take() {
            None => grads,
            Some(mut sum) => {
                for (name, g) in grads {
                    match sum.get_mut(&name) {
                        Some(s) => s.values = s.values.clone() + g.values,
                        None => {
                            sum.insert(name, g);
                        }
                    }
                }
                sum
            }
        });
    }

    /// Clips the accumulated gradients, steps every parameter that has one at `lr`, and
    /// clears them. Returns the updated model and the gradient norm before clipping (0 when
    /// nothing was accumulated, in which case the model is returned unchanged).
    pub fn step<M: AutodiffModule<B>>(&mut self, model: M, lr: f64) -> (M, f64) {
        let Some(mut grads) = self.accumulated.take() else {
            return (model, 0.0);
        };
        let max = self.config.max_grad_norm;
        let norm = if max > 0.0 {
            clip_gradients(&mut grads, max, 1e-6)
        } else {
            lm_core::optim::global_l2_norm(&grads)
        };
        (self.adamw.step_module(model, &grads, lr), norm)
    }
}
