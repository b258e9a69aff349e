//! The training data of each loop, read as text (so bad files fail before the model loads)
//! and tokenized once the tokenizer is there.

use std::path::Path;

use lm_align::eval::{PromptTemplate, Scorer, read_dataset, read_jsonl};
use lm_align::policy::TextCodec;
use lm_align::sft_data::{SftExample, read_sft_jsonl};
use lm_align::train::{PreferencePair, Question, TokenPair};
use lm_core::{LmError, Result};
use serde::Deserialize;

/// A loop's examples, before tokenization.
pub enum TextData {
    /// `{prompt, response}` lines (the course's SFT files; extra keys such as
    /// `ground_truth` are ignored).
    Sft(Vec<SftExample>),
    /// Questions with their reference answers (GSM8K / MATH JSONL).
    Questions(Vec<(String, String)>),
    /// `{prompt, chosen, rejected}` lines.
    Preferences(Vec<Preference>),
}

#[derive(Deserialize)]
pub struct Preference {
    prompt: String,
    chosen: String,
    rejected: String,
}

pub fn read_sft(path: &Path) -> Result<TextData> {
    let examples = read_sft_jsonl(path).map_err(|reason| LmError::BadFile {
        file: path.to_path_buf(),
        reason,
    })?;
    non_empty(path, examples.len())?;
    Ok(TextData::Sft(examples))
}

/// A math set [`read_dataset`] reads; the reward is r1_zero's, so MMLU is refused.
pub fn read_questions(path: &Path) -> Result<TextData> {
    let dataset = read_dataset(path)?;
    if dataset.scorer != Scorer::R1Zero {
        return Err(LmError::BadFile {
            file: path.to_path_buf(),
            reason: "is an MMLU set; GRPO and expert iteration train on GSM8K / MATH JSONL (r1_zero reward)".into(),
        });
    }
    non_empty(path, dataset.examples.len())?;
    Ok(TextData::Questions(
        dataset
            .examples
            .into_iter()
            .map(|e| (e.question, e.ground_truth))
            .collect(),
    ))
}

pub fn read_preferences(path: &Path) -> Result<TextData> {
    let pairs: Vec<Preference> = read_jsonl(path)?.into_iter().map(|(_, p)| p).collect();
    non_empty(path, pairs.len())?;
    Ok(TextData::Preferences(pairs))
}

fn non_empty(path: &Path, n: usize) -> Result<()> {
    if n == 0 {
        return Err(LmError::BadFile {
            file: path.to_path_buf(),
            reason: "has no examples".into(),
        });
    }
    Ok(())
}

/// SFT pairs: prompt and response tokenized apart (as the course's
/// `tokenize_prompt_and_output`), no EOS added.
pub fn sft_pairs(examples: &[SftExample], codec: &dyn TextCodec) -> Result<Vec<TokenPair>> {
    examples
        .iter()
        .map(|e| {
            Ok(TokenPair {
                prompt_ids: codec.encode(&e.prompt)?,
                response_ids: codec.encode(&e.response)?,
            })
        })
        .collect()
}

/// Questions rendered into `template`, tokenized.
pub fn questions(
    items: &[(String, String)],
    template: &PromptTemplate,
    codec: &dyn TextCodec,
) -> Result<Vec<Question>> {
    items
        .iter()
        .map(|(question, answer)| Question::new(template, question, answer, codec))
        .collect()
}

/// Preference pairs; each response ends with the tokenizer's EOS, as the course's DPO
/// data does, so the model learns where a preferred answer stops.
pub fn preference_pairs(
    items: &[Preference],
    codec: &dyn TextCodec,
) -> Result<Vec<PreferencePair>> {
    let eos = codec.stop_token_ids().first().copied();
    let response = |text: &str| -> Result<Vec<u32>> {
        let mut ids = codec.encode(text)?;
        ids.extend(eos);
        Ok(ids)
    };
    items
        .iter()
        .map(|p| {
            Ok(PreferencePair {
                prompt_ids: codec.encode(&p.prompt)?,
                chosen_ids: response(&p.chosen)?,
                rejected_ids: response(&p.rejected)?,
            })
        })
        .collect()
}
