//! The lab's result: held-out accuracy after each stage, as JSON and a Markdown table.

use serde::Serialize;

/// Held-out figures of the model after one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    pub stage: String,
    /// Sampled at the eval temperature (the course's protocol).
    pub accuracy: f64,
    pub format_rate: f64,
    pub greedy_accuracy: f64,
    /// Optimizer steps (GRPO: rollout steps) the stage ran.
    pub steps: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub git_commit: String,
    pub seed: u64,
    pub held_out: usize,
    pub parameters: usize,
    pub stages: Vec<StageResult>,
}

impl LabReport {
    pub fn stage(&self, name: &str) -> Option<&StageResult> {
        self.stages.iter().find(|s| s.stage == name)
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Held-out accuracy on {} problems (model {} parameters, seed {}, commit {}).\n\n\
             | stage | accuracy (sampled) | format | accuracy (greedy) | steps | seconds |\n\
             |---|---|---|---|---|---|\n",
            self.held_out, self.parameters, self.seed, self.git_commit
        );
        for s in &self.stages {
            out += &format!(
                "| {} | {:.3} | {:.3} | {:.3} | {} | {:.0} |\n",
                s.stage, s.accuracy, s.format_rate, s.greedy_accuracy, s.steps, s.seconds
            );
        }
        out
    }
}
