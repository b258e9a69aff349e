//! Chat templates: a model's Jinja template (from tokenizer_config.json or GGUF
//! `tokenizer.chat_template`) rendered with MiniJinja the way Hugging Face transformers
//! renders it: `trim_blocks` and `lstrip_blocks` on, Python string methods (`.strip()`,
//! `.startswith()` …) available, `raise_exception(msg)` failing the render, and
//! `strftime_now(fmt)` giving the current UTC date.

use std::collections::BTreeMap;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, Value};
use serde::Deserialize;

use crate::error::{LmError, Result};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Renders `messages` through `template`; with `add_generation_prompt` the text ends with
/// the header of an assistant turn. `bos` / `eos` are the `bos_token` / `eos_token`
/// variables (templates such as Llama 3's start with `{{ bos_token }}`).
pub fn render_chat(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String> {
    let env = environment()?;
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| chat_err(format!("template does not parse: {e:#}")))?;
    let messages: Vec<Value> = messages.iter().map(message_value).collect();
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
    };
    tmpl.render(ctx)
        .map_err(|e| chat_err(format!("render failed: {e:#}")))
}

fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| chat_err(format!("syntax config: {e}")))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<Value, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env.add_function("strftime_now", strftime_now);
    Ok(env)
}

fn message_value(m: &ChatMessage) -> Value {
    let mut map = BTreeMap::new();
    map.insert("role", Value::from(m.role.as_str()));
    map.insert("content", Value::from(m.content.as_str()));
    Value::from(map)
}

/// `strftime_now(fmt)`: today's UTC date for the few formats chat templates use
/// (`%d`, `%m`, `%Y`, `%b`, `%B`; anything else is kept as written).
fn strftime_now(fmt: String) -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format_date(&fmt, y, m, d)
}

fn format_date(fmt: &str, y: i64, m: u32, d: u32) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = MONTHS[(m as usize - 1) % 12];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn chat_err(reason: String) -> LmError {
    LmError::config("chat_template", reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_turns_and_generation_prompt() {
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
        ];
        let with = render_chat(CHATML, &msgs, true, "", "").unwrap();
        assert_eq!(
            with,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let without = render_chat(CHATML, &msgs, false, "", "").unwrap();
        assert_eq!(without, with.trim_end_matches("<|im_start|>assistant\n"));
    }

    #[test]
    fn block_whitespace_python_methods_and_bos() {
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation
        // before one (expected output from Python jinja2 with both options on).
        let t = "{{ bos_token }}\n{% for m in messages %}\n    {{ m.content.strip().upper() }}|\n    {% if true %}x{% endif %}\n{% endfor %}";
        let msgs = [ChatMessage::new("user", "  hi  ")];
        let out = render_chat(t, &msgs, false, "<s>", "</s>").unwrap();
        assert_eq!(out, "<s>\n    HI|\nx");
    }

    #[test]
    fn raise_exception_and_bad_syntax_are_errors() {
        let t = "{% if messages[0].role != 'system' %}{{ raise_exception('need a system turn') }}{% endif %}";
        let err = render_chat(t, &[ChatMessage::new("user", "x")], true, "", "").unwrap_err();
        assert!(err.to_string().contains("need a system turn"), "{err}");
        let err = render_chat("{% for %}", &[], true, "", "").unwrap_err();
        assert!(err.to_string().contains("chat_template"), "{err}");
    }

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_930), (2024, 7, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(format_date("%d %b %Y", 2024, 7, 26), "26 Jul 2024");
        assert_eq!(format_date("%B %m%%", 2024, 12, 1), "December 12%");
        assert!(strftime_now("%Y".into()).parse::<i64>().unwrap() >= 2024);
    }
}
