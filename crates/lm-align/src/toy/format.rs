//! The r1_zero prompt and response format for the toy task.

use super::problems::Problem;
use crate::eval::PromptTemplate;

/// The course's r1_zero prompt (`a5/prompts/r1_zero.prompt`) without its one-paragraph
/// preamble. The preamble is ~400 characters of fixed text before every question: a tiny
/// char-level model trained on a CPU would spend most of its context and steps on it,
/// while the format it teaches (`<think> … </think> <answer> … </answer>`) is kept whole.
pub const R1_ZERO_COMPACT: &str = "User: {question}\nAssistant: <think>";

/// The response that follows the prompt's `<think>`, in the form the r1_zero reward checks.
pub fn format_response(reasoning: &str, answer: &str) -> String {
    format!(" {reasoning} </think> <answer> {answer} </answer>")
}

/// Prompt plus the teacher's response for each problem: the text the tiny LM is pretrained
/// on (the caller ends each with EOS).
pub fn pretraining_documents(problems: &[Problem], template: &PromptTemplate) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            template.render(&p.question) + &format_response(&p.teacher_reasoning, &p.teacher_answer)
        })
        .collect()
}
