//! The hook through which a training loop runs data-parallel: it broadcasts the initial
//! parameters and averages gradients over the ranks. Implementations live with the
//! communicators (`lm_systems::dist`); the trainer only sees this trait.

use std::ops::Range;

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

/// The rows of a global batch of `global_batch` that `rank` of `world_size` trains on, or
/// `None` when the batch does not divide evenly over the ranks.
pub fn rank_rows(global_batch: usize, rank: usize, world_size: usize) -> Option<Range<usize>> {
    if world_size == 0 || !global_batch.is_multiple_of(world_size) {
        return None;
    }
    let per = global_batch / world_size;
    Some(rank * per..(rank + 1) * per)
}
