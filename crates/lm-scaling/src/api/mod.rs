//! The course's training API: run configs, the client with its budget ledger, the planner
//! and the local server.

pub mod client;
pub mod config;
pub mod ledger;
pub mod oracle;
pub mod planner;
pub mod server;
pub mod train_oracle;

pub use client::{ApiClient, COURSE_BUDGET, Job, QueryOutcome, Submitted};
pub use config::{RunConfig, RunRecord};
pub use oracle::{LossOracle, SurfaceOracle};
pub use planner::{Plan, PlanOptions, plan};
pub use server::{JobStatus, LocalServer, ServerConfig};
pub use train_oracle::TrainingOracle;
