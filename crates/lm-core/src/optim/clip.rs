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

/// `min(1, max_norm / (sqrt(sq_norm) + eps))` as a one-element tensor: the factor the
/// handout's clipping multiplies gradients by, computed on the device.
pub(super) fn clip_scale<B: Backend>(
    sq_norm: Tensor<B, 1>,
    max_norm: f64,
    eps: f64,
) -> Tensor<B, 1> {
    sq_norm
        .sqrt()
        .add_scalar(eps)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0)
}

/// [`clip_to_norm`] without leaving the device: `sq_norm` is [`squared_norm_tensor`]'s
/// result and the scale `min(1, max_norm / (norm + eps))` stays a tensor, so a training
/// step needs no read-back.
pub fn clip_to_norm_on_device<B: Backend>(
    grads: &mut NamedTensors<B>,
    sq_norm: Tensor<B, 1>,
    max_norm: f64,
    eps: f64,
) {
    let scale = clip_scale(sq_norm, max_norm, eps);
    for g in grads.values_mut() {
        g.values = g.values.clone().mul(scale.clone());
    }
}

/// Scales every gradient by `max_norm / (norm + eps)` when the global norm exceeds
/// `max_norm` (the handout's rule, eps = 1e-6). Returns the norm before clipping.
pub fn clip_gradients<B: Backend>(grads: &mut NamedTensors<B>, max_norm: f64, eps: f64) -> f64 {
    let norm = global_l2_norm(grads);
    clip_to_norm(grads, norm, max_norm, eps);
    norm
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::*;
    use crate::backends::NdArray;
    use crate::params::FlatTensor;

    fn grads(scale: f32) -> NamedTensors<NdArray> {
        let device = Default::default();
        let mut map = NamedTensors::new();
        for (name, values) in [("a", vec![3.0f32, -4.0]), ("b", vec![1.0, 2.0, -2.0])] {
            let values: Vec<f32> = values.iter().map(|v| v * scale).collect();
            let t = Tensor::<NdArray, 1>::from_floats(values.as_slice(), &device);
            map.insert(name.to_string(), FlatTensor::from_tensor(t));
        }
        map
    }

    fn host(g: &NamedTensors<NdArray>) -> Vec<f32> {
        g.values()
            .flat_map(|t| t.values.to_data().to_vec::<f32>().unwrap())
            .collect()
    }

    /// The on-device rule equals the host rule, both when clipping and when not.
    #[test]
    fn on_device_clipping_matches_host_clipping() {
        for (scale, max_norm) in [(1.0, 1.0), (0.01, 1.0), (2.0, 5.0)] {
            let mut on_host = grads(scale);
            let norm = global_l2_norm(&on_host);
            clip_to_norm(&mut on_host, norm, max_norm, 1e-6);
            let mut on_device = grads(scale);
            let sq = squared_norm_tensor(&on_device).unwrap();
            clip_to_norm_on_device(&mut on_device, sq, max_norm, 1e-6);
            for (a, b) in host(&on_host).iter().zip(host(&on_device)) {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}
