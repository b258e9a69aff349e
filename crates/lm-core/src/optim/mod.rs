//! Optimisation: the handout's AdamW, global-norm clipping and the cosine schedule.

mod adamw;
mod clip;
mod fused;
mod schedule;

pub use adamw::{AdamW, AdamWConfig, FUSED_CHUNK_VALUES, Moments};
pub use clip::{
    clip_gradients, clip_to_norm, clip_to_norm_on_device, global_l2_norm, squared_norm_tensor,
};
pub use schedule::lr_cosine_schedule;
