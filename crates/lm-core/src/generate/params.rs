//! What a caller asks for: the prompt and how to sample its continuation.

use serde::{Deserialize, Serialize};

use crate::error::{LmError, Result};

/// How one request is sampled and when it stops (vLLM's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Divides the logits before sampling; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens; `None` keeps all.
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability
    /// (after temperature and top-k) reaches `top_p`; `1.0` turns it off.
    pub top_p: f32,
    /// The most tokens to generate (stop tokens included).
    pub max_tokens: usize,
    /// Strings that end generation; searched in the decoded generated text, which is cut
    /// before the first match. Needs a [`Detokenizer`](super::Detokenizer).
    pub stop: Vec<String>,
    /// Tokens that end generation (put the model's EOS here); the token is kept in
    /// `tokens` but not decoded into `text`.
    pub stop_token_ids: Vec<u32>,
    /// Seeds this request's own RNG; `None` derives one from the engine seed and the id.
    pub seed: Option<u64>,
    /// Return the log-probability of every generated token.
    pub logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            max_tokens: 16,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            seed: None,
            logprobs: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of up to `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens,
            ..Self::default()
        }
    }

    /// Whether sampling is plain argmax (temperature 0, or only one candidate kept).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == Some(1)
    }

    /// Rejects values that cannot be sampled with, naming the field.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(LmError::config(
                "temperature",
                format!("must be finite and >= 0, got {}", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LmError::config(
                "top_p",
                format!("must be in (0, 1], got {}", self.top_p),
            ));
        }
        if self.top_k == Some(0) {
            return Err(LmError::config("top_k", "must be >= 1 (or unset)"));
        }
        if self.max_tokens == 0 {
            return Err(LmError::config("max_tokens", "must be >= 1"));
        }
        if let Some(i) = self.stop.iter().position(String::is_empty) {
            return Err(LmError::config(format!("stop[{i}]"), "is empty"));
        }
        Ok(())
    }
}

/// One prompt to complete. `id` names it in events and errors and, when `params.seed` is
/// `None`, selects its RNG stream; ids must be unique within one `generate` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub prompt: Vec<u32>,
    #[serde(default)]
    pub params: SamplingParams,
}

impl Request {
    pub fn new(id: u64, prompt: Vec<u32>, params: SamplingParams) -> Self {
        Self { id, prompt, params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(p: SamplingParams) -> String {
        match p.validate() {
            Err(LmError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_vllm_like_and_valid() {
        let p = SamplingParams::default();
        assert_eq!((p.temperature, p.top_p, p.max_tokens), (1.0, 1.0, 16));
        assert!(p.validate().is_ok());
        assert!(SamplingParams::greedy(4).is_greedy());
    }

    #[test]
    fn validation_names_the_field() {
        let base = SamplingParams::default;
        let cases = [
            (
                SamplingParams {
                    temperature: -0.5,
                    ..base()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    temperature: f32::NAN,
                    ..base()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    top_p: 0.0,
                    ..base()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    top_p: 1.5,
                    ..base()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    top_k: Some(0),
                    ..base()
                },
                "top_k",
            ),
            (
                SamplingParams {
                    max_tokens: 0,
                    ..base()
                },
                "max_tokens",
            ),
            (
                SamplingParams {
                    stop: vec!["a".into(), String::new()],
                    ..base()
                },
                "stop[1]",
            ),
        ];
        for (params, field) in cases {
            assert_eq!(field_of(params), field);
        }
    }
}
