//! The parts of a Hugging Face `tokenizer_config.json` the engine uses: bos/eos token names
//! and the chat template.

use std::path::Path;

use serde_json::Value;

use crate::error::{LmError, Result};

#[derive(Debug, Default)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub chat_template: Option<String>,
}

impl TokenizerConfig {
    /// Reads `tokenizer_config.json` in `dir` (all fields None when absent); the template
    /// falls back to a `chat_template.jinja` file (the newer Hugging Face layout).
    pub fn load_beside(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer_config.json");
        let mut config = if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
            let json: Value = serde_json::from_str(&text).map_err(|e| LmError::BadFile {
                file: path.clone(),
                reason: format!("invalid JSON: {e}"),
            })?;
            Self::from_json(&json)
        } else {
            Self::default()
        };
        if config.chat_template.is_none() {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                let text = std::fs::read_to_string(&jinja).map_err(|e| LmError::io(&jinja, e))?;
                config.chat_template = Some(text);
            }
        }
        Ok(config)
    }

    fn from_json(json: &Value) -> Self {
        Self {
            bos_token: token_name(json.get("bos_token")),
            eos_token: token_name(json.get("eos_token")),
            chat_template: template(json.get("chat_template")),
        }
    }
}

/// A token given as `"<s>"` or as `{"content": "<s>", ...}`.
fn token_name(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// A template given as a string, or as a list of `{"name", "template"}` (the `default` one).
fn template(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokens_in_both_forms_and_named_templates() {
        let json: Value = serde_json::json!({
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
            "chat_template": [
                {"name": "tool_use", "template": "T"},
                {"name": "default", "template": "D"}
            ]
        });
        let c = TokenizerConfig::from_json(&json);
        assert_eq!(c.bos_token.as_deref(), Some("<s>"));
        assert_eq!(c.eos_token.as_deref(), Some("</s>"));
        assert_eq!(c.chat_template.as_deref(), Some("D"));
        let none = TokenizerConfig::from_json(&serde_json::json!({"bos_token": null}));
        assert_eq!(none.bos_token, None);
        assert_eq!(none.chat_template, None);
    }
}
