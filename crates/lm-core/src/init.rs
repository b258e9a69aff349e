//! Parameter initialisation as the handout prescribes, drawn on the host from a seeded RNG so
//! that a seed gives the same weights on every backend.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

/// A seeded source of initial weights. Each tensor draws from the same stream in model order.
pub struct Initializer {
    rng: StdRng,
}

impl Initializer {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Samples of N(0, std²) truncated to [-cutoff·std, cutoff·std] (rejection sampling, as
    /// `torch.nn.init.trunc_normal_`'s distribution).
    pub fn truncated_normal(&mut self, n: usize, std: f64, cutoff: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                loop {
                    let z: f64 = self.rng.sample(StandardNormal);
                    if z.abs() <= cutoff {
                        break (z * std) as f32;
                    }
                }
            })
            .collect()
    }

    /// A trainable parameter of the given shape filled by [`Self::truncated_normal`].
    pub fn param<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        cutoff: f64,
        device: &B::Device,
    ) -> Param<Tensor<B, D>> {
        let values = self.truncated_normal(shape.iter().product(), std, cutoff);
        Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_has_right_spread_and_bounds() {
        let mut init = Initializer::new(7);
        let std = 0.02;
        let xs = init.truncated_normal(200_000, std, 3.0);
        assert!(xs.iter().all(|x| x.abs() <= (3.0 * std) as f32 + 1e-9));
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // A N(0,1) truncated at ±3 has variance 0.9733.
        let expected = 0.9733 * std * std;
        assert!(mean.abs() < 1e-3 * std * 10.0, "mean {mean}");
        assert!(
            (var / expected - 1.0).abs() < 0.02,
            "var {var} vs {expected}"
        );
    }

    #[test]
    fn same_seed_same_values() {
        let a = Initializer::new(3).truncated_normal(16, 1.0, 3.0);
        let b = Initializer::new(3).truncated_normal(16, 1.0, 3.0);
        let c = Initializer::new(4).truncated_normal(16, 1.0, 3.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
