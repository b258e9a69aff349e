//! The course's training API: run configs, the client with its budget ledger, the planner
//! and the local server.

pub mod client;
pub mod config;
pub mod ledger;
pub mod planner;
pub mod server;
pub mod train_oracle;

pub use client::{ApiClient, COURSE_BUDGET, QueryOutcome};
pub use config::{RunConfig, RunRecord};
pub use planner::{Plan, PlanOptions, plan};
pub use server::{LocalServer, LossOracle, ServerConfig, SurfaceOracle};
pub use train_oracle::TrainingOracle;
