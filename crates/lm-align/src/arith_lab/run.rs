//! The lab's stages, each followed by a held-out evaluation.

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use lm_core::fsutil::write_atomic;
use lm_core::generate::SamplingParams;
use lm_core::params::save_safetensors;
use lm_core::pretrained::Decoder;
use lm_core::provenance::git_commit;
use lm_core::{LmError, Result};

use super::config::LabConfig;
use super::facts::fact_documents;
use super::report::{LabReport, StageResult};
use crate::eval::{Dataset, EvalExample, PromptTemplate, Scorer, evaluate};
use crate::grader::r1_zero_reward;
use crate::policy::TextCodec;
use crate::rollout::RolloutOptions;
use crate::toy::{
    CharCodec, Problem, R1_ZERO_COMPACT, format_response, generate_problems, split_problems,
};
use crate::train::{MetricsLog, Question, TokenPair, train_grpo, train_sft};

/// Runs the whole lab in `run_dir` (created; must not hold an earlier report) on `device`.
pub fn run_lab<B: AutodiffBackend>(
    config: &LabConfig,
    run_dir: &Path,
    device: &B::Device,
    quiet: bool,
) -> Result<LabReport> {
    std::fs::create_dir_all(run_dir).map_err(|e| LmError::io(run_dir, e))?;
    if run_dir.join("report.json").exists() {
        return Err(LmError::config(
            "run_dir",
            format!("{} already holds a finished run", run_dir.display()),
        ));
    }
    let commit = git_commit();
    write_atomic(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;
    let run_info = serde_json::json!({ "git_commit": commit, "seed": config.seed });
    write_atomic(&run_dir.join("run.json"), run_info.to_string().as_bytes())?;

    let codec = CharCodec::new();
    let data = LabData::generate(config, &codec)?;
    let decoder_config = config.decoder_config()?;
    let parameters = decoder_config.num_params();
    let mut policy = Decoder::<B>::random(decoder_config, config.seed, device)?;
    let max_len = config.model.max_len;
    let evaluator = Evaluator {
        config,
        codec: &codec,
        held_out: &data.held_out,
        run_dir,
    };
    let mut stages = Vec::new();
    let log =
        |name: &str| MetricsLog::create(&run_dir.join(format!("{name}.metrics.jsonl")), quiet);

    let start = Instant::now();
    let (p, steps) = train_sft(
        policy,
        &data.pretrain,
        codec.pad_id(),
        &config.pretrain,
        &mut log("pretrain")?,
        None,
    )?;
    policy = p;
    stages.push(evaluator.stage("pretrained", &policy.valid(), steps.len(), start)?);

    let start = Instant::now();
    let (p, steps) = train_sft(
        policy,
        &data.sft,
        codec.pad_id(),
        &config.sft,
        &mut log("sft")?,
        None,
    )?;
    policy = p;
    stages.push(evaluator.stage("sft", &policy.valid(), steps.len(), start)?);

    let start = Instant::now();
    let mut periodic = |m: &Decoder<B::InnerBackend>, step: usize| -> Result<f64> {
        evaluator.accuracy(&format!("grpo-step{step}"), m)
    };
    let (p, steps) = train_grpo(
        policy,
        &codec,
        &data.questions,
        &r1_zero_reward,
        max_len,
        &config.grpo,
        &mut log("grpo")?,
        Some(&mut periodic),
    )?;
    policy = p;
    stages.push(evaluator.stage("grpo", &policy.valid(), steps.len(), start)?);
    save_safetensors(&policy.valid(), &run_dir.join("model.safetensors"))?;

    let report = LabReport {
        git_commit: commit,
        seed: config.seed,
        held_out: data.held_out.examples.len(),
        parameters,
        stages,
    };
    write_atomic(&run_dir.join("report.md"), report.to_markdown().as_bytes())?;
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| LmError::config("report", e.to_string()))?;
    write_atomic(&run_dir.join("report.json"), json.as_bytes())?;
    Ok(report)
}

/// The lab's data, tokenized: disjoint problem sets for each stage and the held-out set.
struct LabData {
    pretrain: Vec<TokenPair>,
    sft: Vec<TokenPair>,
    questions: Vec<Question>,
    held_out: Dataset,
}

impl LabData {
    fn generate(config: &LabConfig, codec: &CharCodec) -> Result<Self> {
        let wanted = config.pretrain_problems + config.sft_problems + config.rl_problems;
        // Draw extra so duplicates dropped by the split still leave enough.
        let all = generate_problems(
            &config.task,
            (wanted + config.eval.held_out) * 5 / 4,
            config.seed,
        )?;
        let (train, held) = split_problems(all, config.eval.held_out)?;
        if train.len() < wanted {
            return Err(LmError::config(
                "task",
                format!(
                    "yields only {} distinct training problems, {wanted} wanted (raise max_operand or lower the counts)",
                    train.len()
                ),
            ));
        }
        let (pre, rest) = train.split_at(config.pretrain_problems);
        let (sft, rest) = rest.split_at(config.sft_problems);
        let rl = &rest[..config.rl_problems];
        let eos = CharCodec::eos_id();
        let facts = fact_documents(
            config.task.max_operand,
            config.fact_documents,
            config.model.max_len.saturating_sub(1),
            config.seed,
        );
        let pretrain = pre
            .iter()
            .map(plain_document)
            .chain(facts)
            .map(|doc| {
                let mut ids = codec.encode(&doc)?;
                ids.push(eos);
                // Pretraining windows are cut at the context, as any LM corpus is.
                ids.truncate(config.model.max_len);
                Ok(TokenPair {
                    prompt_ids: Vec::new(),
                    response_ids: ids,
                })
            })
            .collect::<Result<_>>()?;
        let template = PromptTemplate::new(R1_ZERO_COMPACT)?;
        let sft = sft
            .iter()
            .map(|p| {
                Ok(TokenPair {
                    prompt_ids: codec.encode(&template.render(&p.question))?,
                    response_ids: codec
                        .encode(&format_response(&p.teacher_reasoning, &p.teacher_answer))?,
                })
            })
            .collect::<Result<_>>()?;
        let questions = rl
            .iter()
            .map(|p| Question::new(&template, &p.question, &p.answer, codec))
            .collect::<Result<_>>()?;
        let examples = held
            .iter()
            .enumerate()
            .map(|(i, p)| EvalExample {
                id: format!("held-out-{i}"),
                question: p.question.clone(),
                ground_truth: p.answer.clone(),
                options: Vec::new(),
            })
            .collect();
        let held_out = Dataset {
            examples,
            scorer: Scorer::R1Zero,
        };
        Ok(Self {
            pretrain,
            sft,
            questions,
            held_out,
        })
    }
}

/// A pretraining document: the question and the teacher's worked solution in plain text,
/// not the r1_zero format (SFT teaches that).
fn plain_document(p: &Problem) -> String {
    format!(
        "Question: {}\nSolution: {} The answer is {}.",
        p.question, p.teacher_reasoning, p.teacher_answer
    )
}

/// Held-out evaluation of a stage's model, sampled and greedy, outputs kept per stage.
struct Evaluator<'a> {
    config: &'a LabConfig,
    codec: &'a CharCodec,
    held_out: &'a Dataset,
    run_dir: &'a Path,
}

impl Evaluator<'_> {
    fn run<B: Backend>(
        &self,
        name: &str,
        model: &Decoder<B>,
        temperature: f32,
    ) -> Result<crate::eval::EvalReport> {
        let e = &self.config.eval;
        let params = SamplingParams {
            temperature,
            max_tokens: e.max_tokens,
            stop: vec!["</answer>".into()],
            ..SamplingParams::default()
        };
        let opts = RolloutOptions {
            max_batch_rows: e.max_batch_rows,
            max_len: self.config.model.max_len,
            seed: self.config.seed,
        };
        let template = PromptTemplate::new(R1_ZERO_COMPACT)?;
        let report = evaluate(model, self.codec, self.held_out, &template, &params, &opts)?;
        report.write(&self.run_dir.join("eval").join(name))?;
        Ok(report)
    }

    fn accuracy<B: Backend>(&self, name: &str, model: &Decoder<B>) -> Result<f64> {
        Ok(self
            .run(name, model, self.config.eval.temperature)?
            .accuracy)
    }

    fn stage<B: Backend>(
        &self,
        stage: &str,
        model: &Decoder<B>,
        steps: usize,
        start: Instant,
    ) -> Result<StageResult> {
        let seconds = start.elapsed().as_secs_f64();
        let sampled = self.run(stage, model, self.config.eval.temperature)?;
        let greedy = self.run(&format!("{stage}-greedy"), model, 0.0)?;
        Ok(StageResult {
            stage: stage.into(),
            accuracy: sampled.accuracy,
            format_rate: sampled.format_rate,
            greedy_accuracy: greedy.accuracy,
            steps,
            seconds,
        })
    }
}
