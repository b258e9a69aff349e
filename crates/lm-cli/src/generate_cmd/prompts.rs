//! Where `lm generate`'s prompts come from: `--prompt` flags or a JSONL file, each either
//! plain text or chat messages rendered through the model's chat template.

use std::path::Path;

use anyhow::{Context, bail};
use lm_core::pretrained::chat::{ChatMessage, render_chat};
use serde::Deserialize;

/// One line of a `--prompts` file: `{"prompt": "..."}` or `{"messages": [{"role", "content"}]}`,
/// optionally with its own `seed`, `max_tokens`, `temperature`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
}

pub fn from_flags(prompts: &[String]) -> Vec<PromptSpec> {
    prompts
        .iter()
        .map(|p| PromptSpec {
            prompt: Some(p.clone()),
            ..Default::default()
        })
        .collect()
}

pub fn from_jsonl(path: &Path) -> anyhow::Result<Vec<PromptSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let spec: PromptSpec = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a prompt object", path.display(), i + 1))?;
        if spec.prompt.is_some() == spec.messages.is_some() {
            bail!(
                "{}:{}: give exactly one of `prompt` and `messages`",
                path.display(),
                i + 1
            );
        }
        out.push(spec);
    }
    if out.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    Ok(out)
}

/// How prompts become model input text.
pub struct ChatStyle<'a> {
    pub template: &'a str,
    pub system: Option<&'a str>,
    pub bos: &'a str,
    pub eos: &'a str,
}

/// The text the model continues: `messages` always through the template; a plain prompt
/// through it only with `--chat` (as one user message after the optional system one).
pub fn render(
    spec: &PromptSpec,
    chat: Option<&ChatStyle<'_>>,
    wrap_plain: bool,
    index: usize,
) -> anyhow::Result<String> {
    let messages = match (&spec.messages, &spec.prompt, chat) {
        (Some(m), _, _) => m.clone(),
        (None, Some(p), Some(style)) if wrap_plain => {
            let mut m = Vec::new();
            if let Some(system) = style.system {
                m.push(ChatMessage::new("system", system));
            }
            m.push(ChatMessage::new("user", p.as_str()));
            m
        }
        (None, Some(p), _) => return Ok(p.clone()),
        (None, None, _) => bail!("prompt {}: empty", index + 1),
    };
    let Some(style) = chat else {
        bail!(
            "prompt {}: `messages` need a chat template, and this model has none",
            index + 1
        );
    };
    Ok(render_chat(
        style.template,
        &messages,
        true,
        style.bos,
        style.eos,
    )?)
}
