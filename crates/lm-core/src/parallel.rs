//! The hook through which a training loop runs data-parallel: it broadcasts the initial
//! parameters and averages gradients over the ranks. Implementations live with the
//! communicators (`lm_systems::dist`); the trainer only sees this trait.

use burn::tensor::backend::Backend;

use crate::params::NamedTensors;

pub trait DataParallelHook<B: Backend> {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Replaces `values` (every parameter, flattened in name order) with rank 0's.
    fn broadcast_params(&mut self, values: &mut [f32]) -> Result<(), String>;
    /// Replaces each gradient by its mean over the ranks.
    fn average_gradients(&mut self, grads: &mut NamedTensors<B>) -> Result<(), String>;
    /// The mean over ranks of one number per rank (e.g. the loss, for logging).
    fn mean(&mut self, value: f64) -> Result<f64, String>;
}
