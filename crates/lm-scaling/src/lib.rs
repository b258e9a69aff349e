//! Lab 3 (scaling laws): IsoFLOP and Chinchilla fits with bootstrap intervals, reports and
//! plots; the course's training API — client with a budget ledger, experiment planner, and a
//! local server backed by a loss surface or by real short training runs.

pub mod analysis;
pub mod api;
pub mod chinchilla;
pub mod error;
pub mod isoflop;
pub mod plot;
pub mod regression;
pub mod report;
pub mod runs;

pub use analysis::{Analysis, AnalysisOptions, Method, analyze};
pub use error::{Result, ScalingError};
pub use lm_core;
pub use runs::{Run, load_runs};
