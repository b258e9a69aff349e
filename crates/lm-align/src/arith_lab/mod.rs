//! The lab-5 demonstration (`cargo xtask lab5`): pretrain a tiny LM from scratch on
//! generated arithmetic word problems (a noisy teacher's worked solutions), SFT it on
//! r1_zero-format examples, then GRPO on questions alone, measuring held-out accuracy
//! after every stage.

mod config;
mod facts;
mod report;
mod run;

pub use config::{EvalSettings, LabConfig, TinyModel};
pub use report::{LabReport, StageResult};
pub use run::run_lab;
