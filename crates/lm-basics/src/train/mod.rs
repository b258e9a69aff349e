//! The lab-1 pretraining loop: config, checkpoints, metrics, the loop itself.

pub mod checkpoint;
pub mod config;
pub mod fixture;
pub mod metrics;
pub mod profile;
pub mod step_log;
pub mod trainer;

pub use config::TrainConfig;
pub use trainer::{RunOutcome, evaluate, train, train_data_parallel};
