//! What generation hands back: finished completions and the events streamed meanwhile.

use serde::Serialize;

/// Why a request stopped. Checked in this order after each token: stop token, stop
/// string, `max_tokens`, context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "value", rename_all = "snake_case")]
pub enum FinishReason {
    /// `max_tokens` tokens were generated.
    Length,
    /// The last token is one of `stop_token_ids`.
    StopToken(u32),
    /// The generated text contains this stop string; `text` ends before it.
    StopString(String),
    /// Prompt plus generated tokens filled the engine's `max_len`.
    ContextFull,
}

/// One finished request.
///
/// `tokens` holds every sampled token, including a stop token and the token that completed
/// a stop string (which may carry text past the stop string); `text` is the decoded
/// generated text without the stop token and cut before the stop string (vLLM), empty when
/// the engine has no detokenizer. `logprobs[i]` belongs to `tokens[i]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    pub id: u64,
    pub prompt_len: usize,
    pub tokens: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
    pub text: String,
    pub finish: FinishReason,
}

/// Streamed while `generate` runs, in row order within a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// Request `id` sampled `token`. `text` is the new text that is final: the pieces of
    /// one request concatenate to its `Completion::text` (text that could still become
    /// the start of a stop string is held back until it cannot).
    Token {
        id: u64,
        token: u32,
        logprob: Option<f32>,
        text: &'a str,
    },
    /// Request `id` finished; its `Token` event for the last token came just before.
    Finished(&'a Completion),
}
