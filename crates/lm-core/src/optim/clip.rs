use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;

use crate::params::NamedTensors;

/// `sqrt(Σ g²)` over every element of every gradient.
pub fn global_l2_norm<B: Backend>(grads: &NamedTensors<B>) -> f64 {
    grads
        .values()
        .map(|g| {
            let sq: f64 = g.values.clone().square().sum().into_scalar().elem();
            sq
        })
        .sum::<f64>()
        .sqrt()
}

/// Scales every gradient by `max_norm / (norm + eps)` when the global norm exceeds
/// `max_norm` (the handout's rule, eps = 1e-6). Returns the norm before clipping.
pub fn clip_gradients<B: Backend>(grads: &mut NamedTensors<B>, max_norm: f64, eps: f64) -> f64 {
    let norm = global_l2_norm(grads);
    if norm > max_norm {
        let scale = max_norm / (norm + eps);
        for g in grads.values_mut() {
            g.values = g.values.clone().mul_scalar(scale);
        }
    }
    norm
}
