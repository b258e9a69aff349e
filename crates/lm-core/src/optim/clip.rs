use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};

use crate::params::NamedTensors;

/// `Σ g²` over every element of every gradient, as a one-element tensor on the device (no
/// host round trip: on a GPU each read-back stalls the queue).
pub fn squared_norm_tensor<B: Backend>(grads: &NamedTensors<B>) -> Option<Tensor<B, 1>> {
    grads
        .values()
        .map(|g| g.values.clone().square().sum())
        .reduce(|a, b| a + b)
}

/// `sqrt(Σ g²)` over every element of every gradient.
pub fn global_l2_norm<B: Backend>(grads: &NamedTensors<B>) -> f64 {
    squared_norm_tensor(grads)
        .map(|t| t.into_scalar().elem::<f64>().sqrt())
        .unwrap_or(0.0)
}

/// Scales every gradient by `max_norm / (norm + eps)` when `norm` (their global L2 norm,
/// computed by the caller) exceeds `max_norm`.
pub fn clip_to_norm<B: Backend>(grads: &mut NamedTensors<B>, norm: f64, max_norm: f64, eps: f64) {
    if norm > max_norm {
        let scale = max_norm / (norm + eps);
        for g in grads.values_mut() {
            g.values = g.values.clone().mul_scalar(scale);
        }
    }
}

/// Scales every gradient by `max_norm / (norm + eps)` when the global norm exceeds
/// `max_norm` (the handout's rule, eps = 1e-6). Returns the norm before clipping.
pub fn clip_gradients<B: Backend>(grads: &mut NamedTensors<B>, max_norm: f64, eps: f64) -> f64 {
    let norm = global_l2_norm(grads);
    clip_to_norm(grads, norm, max_norm, eps);
    norm
}
