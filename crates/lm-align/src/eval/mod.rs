//! Zero-shot evaluation on math (and MMLU) sets: render each question into a prompt
//! template, sample one response per question with [`sample_rollouts`], score it and report.
//!
//! Math sets are scored with the R1-Zero reward (format + answer, [`r1_zero_reward`]);
//! MMLU with the option letter [`parse_mmlu_response`] finds. Accuracy is the mean answer
//! reward (for R1-Zero a right answer needs the right format too), format rate the mean
//! format reward (MMLU: a letter could be parsed).

mod datasets;
mod report;

use std::path::Path;

use burn::tensor::backend::Backend;
use lm_core::generate::{CausalLm, SamplingParams};
use lm_core::{LmError, Result};
use serde::{Deserialize, Serialize};

pub use datasets::{
    Dataset, DatasetFormat, EvalExample, read_dataset, read_gsm8k, read_jsonl, read_math, read_mmlu,
};
pub use report::{EvalRecord, EvalReport};

use crate::grader::r1_zero_reward;
use crate::parse::{MmluExample, parse_mmlu_response};
use crate::policy::TextCodec;
use crate::rollout::{RolloutOptions, sample_rollouts};

const SLOT: &str = "{question}";

/// A prompt with a `{question}` slot (e.g. the course's `r1_zero.prompt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    text: String,
}

impl PromptTemplate {
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        if !text.contains(SLOT) {
            return Err(LmError::config(
                "prompt template",
                "has no `{question}` slot",
            ));
        }
        Ok(Self { text })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        Self::new(text).map_err(|_| LmError::BadFile {
            file: path.to_path_buf(),
            reason: "prompt template has no `{question}` slot".into(),
        })
    }

    /// The course's R1-Zero prompt, `<shared>/cs336/a5/prompts/r1_zero.prompt` (pass
    /// `$LM_SHARED`); it ends in `Assistant: <think>`, so responses start inside the thought.
    pub fn r1_zero(shared_dir: &Path) -> Result<Self> {
        Self::from_file(&shared_dir.join("cs336/a5/prompts/r1_zero.prompt"))
    }

    pub fn render(&self, question: &str) -> String {
        self.text.replace(SLOT, question)
    }
}

/// How a response is scored against an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// [`r1_zero_reward`]: `</think> <answer>…</answer>` format and a graded answer.
    R1Zero,
    /// [`parse_mmlu_response`]: format = a letter was found, answer = it is the right one.
    MmluLetter,
}

impl Scorer {
    /// `(format_reward, answer_reward)`, each 0 or 1.
    pub fn score(self, example: &EvalExample, response: &str) -> (f64, f64) {
        match self {
            Self::R1Zero => {
                let r = r1_zero_reward(response, &example.ground_truth);
                (r.format_reward, r.answer_reward)
            }
            Self::MmluLetter => {
                let mmlu = MmluExample {
                    subject: String::new(),
                    question: example.question.clone(),
                    options: example.options.clone(),
                    answer: example.ground_truth.clone(),
                };
                match parse_mmlu_response(&mmlu, response) {
                    Some(letter) => (1.0, f64::from(u8::from(letter == example.ground_truth))),
                    None => (0.0, 0.0),
                }
            }
        }
    }
}

/// Samples one response per example (seeded by `opts`, so reproducible) and scores it.
pub fn evaluate<B: Backend, M: CausalLm<B>>(
    model: &M,
    codec: &dyn TextCodec,
    dataset: &Dataset,
    template: &PromptTemplate,
    params: &SamplingParams,
    opts: &RolloutOptions,
) -> Result<EvalReport> {
    let prompts: Vec<String> = dataset
        .examples
        .iter()
        .map(|e| template.render(&e.question))
        .collect();
    let prompt_ids = prompts
        .iter()
        .map(|p| codec.encode(p))
        .collect::<Result<Vec<_>>>()?;
    let rollouts = sample_rollouts(model, codec, &prompt_ids, 1, params, opts)?;
    let records = rollouts
        .into_iter()
        .map(|r| {
            let example = &dataset.examples[r.prompt_index];
            let (format_reward, answer_reward) = dataset.scorer.score(example, &r.text);
            EvalRecord {
                id: example.id.clone(),
                prompt: prompts[r.prompt_index].clone(),
                response: r.text,
                ground_truth: example.ground_truth.clone(),
                format_reward,
                answer_reward,
                response_tokens: r.response_ids.len(),
                finish_reason: r.finish,
            }
        })
        .collect();
    Ok(EvalReport::from_records(records))
}
