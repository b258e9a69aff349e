//! The pretrained-model tokenizer's text side on real vocabularies: streaming decode,
//! round trips, end-of-generation ids, official chat templates, and error messages.
//! Assets as in `pretrained_tokenizer.rs` (skipped with a note when absent).

mod tok_common;

use lm_core::pretrained::chat::{ChatMessage, render_chat};
use lm_core::pretrained::gguf::{GgufFile, GgufValue, GgufWriter};
use lm_core::pretrained::tokenizer::TextTokenizer;
use tok_common::{VOCABS, asset, gguf_tokenizer, skip};

const TEXTS: [&str; 6] = [
    "Hello, world! 你好，世界。",
    "Emoji: 😀👍🏽 and 🇫🇷 flags; café naïve Ωμέγα",
    "日本語のテキストと한국어 텍스트",
    "def f(x):\n\treturn x ** 2  # squared\n\n\n",
    "   leading and trailing spaces   ",
    "<|im_start|>user\nhi 👋<|im_end|>\n",
];

/// Every tokenizer the assets offer: tokenizer.json files, vocab GGUFs, real GGUF models.
fn all_tokenizers() -> Vec<(String, TextTokenizer)> {
    let mut out = Vec::new();
    for (dir, gguf) in VOCABS {
        if let Some(p) = asset(&format!("tokenizers/{dir}/tokenizer.json")) {
            out.push((
                format!("{dir}/tokenizer.json"),
                TextTokenizer::from_file(&p).unwrap(),
            ));
        }
        if let Some(p) = asset(&format!("tokenizers/{dir}/{gguf}")) {
            out.push((gguf.to_string(), gguf_tokenizer(&p)));
        }
    }
    for model in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
    ] {
        if let Some(p) = asset(&format!("models/gguf/{model}")) {
            out.push((model.to_string(), gguf_tokenizer(&p)));
        }
    }
    if out.is_empty() {
        skip("tokenizers/*/{tokenizer.json,*.gguf} and models/gguf/*");
    }
    out
}

#[test]
fn streaming_decode_equals_full_decode_and_round_trips() {
    for (name, tok) in all_tokenizers() {
        for text in TEXTS {
            let ids = tok.encode(text, false).unwrap();
            let full = tok.decode(&ids, false).unwrap();
            assert_eq!(full, text, "{name}: decode(encode(x)) != x");
            let mut stream = tok.stream(false);
            let mut pieces = Vec::new();
            for &id in &ids {
                if let Some(piece) = stream.push(id).unwrap() {
                    assert!(
                        !piece.contains('\u{FFFD}'),
                        "{name}: broken piece {piece:?}"
                    );
                    pieces.push(piece);
                }
            }
            assert_eq!(stream.finish().unwrap(), None, "{name}: {text:?}");
            assert_eq!(pieces.concat(), full, "{name}: streamed text");
            if text.contains('😀') {
                // The emoji spans several byte tokens: fewer pieces than ids.
                assert!(pieces.len() < ids.len(), "{name}: {} pieces", pieces.len());
            }
        }
    }
}

#[test]
fn end_of_generation_ids() {
    let Some(p) = asset("models/gguf/Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf") else {
        return skip("models/gguf/Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf");
    };
    let qwen = gguf_tokenizer(&p);
    // eos (<|im_end|>) first, then <|endoftext|>.
    assert_eq!(qwen.eos_token_ids(), vec![151645, 151643]);
    assert_eq!(qwen.token_id("<|im_start|>"), Some(151644));
    if let Some(p) = asset("tokenizers/llama3/tokenizer.json") {
        let llama = TextTokenizer::from_file(&p).unwrap();
        assert_eq!(llama.bos_token_id(), Some(128000));
        // Llama 3 (not 3.1) has no <|eom_id|>: id 128008 is a reserved token there.
        assert_eq!(llama.eos_token_ids(), vec![128001, 128009]);
        assert!(
            llama
                .chat_template()
                .unwrap()
                .contains("<|start_header_id|>")
        );
    }
}

fn err_text<T: std::fmt::Debug>(r: lm_core::error::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/tokenizer.json");
    let msg = err_text(TextTokenizer::from_file(&missing));
    assert!(msg.contains("nope/tokenizer.json"), "{msg}");
    let garbage = dir.path().join("tokenizer.json");
    std::fs::write(&garbage, "{\"not\": \"a tokenizer\"}").unwrap();
    let msg = err_text(TextTokenizer::from_file(&garbage));
    assert!(
        msg.contains("tokenizer.json") && msg.contains("not a tokenizer.json"),
        "{msg}"
    );

    let strings = |xs: &[&str]| {
        GgufValue::Array(
            xs.iter()
                .map(|s| GgufValue::String(s.to_string()))
                .collect(),
        )
    };
    let write = |name: &str, model: &str, with_tokens: bool| {
        let mut w = GgufWriter::new();
        w.set("general.architecture", GgufValue::String("llama".into()));
        w.set("tokenizer.ggml.model", GgufValue::String(model.into()));
        if with_tokens {
            w.set("tokenizer.ggml.tokens", strings(&["a", "b", "ab"]));
            w.set("tokenizer.ggml.merges", strings(&["a b"]));
        }
        let path = dir.path().join(name);
        w.write(&path).unwrap();
        GgufFile::open(&path).unwrap()
    };
    let msg = err_text(TextTokenizer::from_gguf(&write("spm.gguf", "llama", true)));
    assert!(
        msg.contains("spm.gguf") && msg.contains("tokenizer.ggml.model") && msg.contains("'llama'"),
        "{msg}"
    );
    let msg = err_text(TextTokenizer::from_gguf(&write(
        "empty.gguf",
        "gpt2",
        false,
    )));
    assert!(
        msg.contains("empty.gguf") && msg.contains("tokenizer.ggml.tokens"),
        "{msg}"
    );
    // The same file with tokens is a working (tiny) tokenizer.
    let tok = TextTokenizer::from_gguf(&write("ok.gguf", "gpt2", true)).unwrap();
    assert_eq!(tok.encode("abab", false).unwrap(), vec![2, 2]);
    assert_eq!(tok.chat_template(), None);
}

#[test]
fn official_chat_templates_render_as_jinja2_does() {
    // Expected strings: Python jinja2 3.1 with trim_blocks and lstrip_blocks (as transformers).
    let msgs = [
        ChatMessage::new("system", " You are terse. "),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "2+2?"),
    ];
    match asset("tokenizers/llama3/chat_template.meta-llama-Llama-3.1-8B-Instruct.jinja") {
        Some(p) => {
            let t = std::fs::read_to_string(p).unwrap();
            let out = render_chat(&t, &msgs, true, "<|begin_of_text|>", "<|eot_id|>").unwrap();
            let want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
            assert_eq!(out, want);
        }
        None => skip("tokenizers/llama3/chat_template.*.jinja"),
    }
    match asset("tokenizers/qwen2.5/tokenizer.json") {
        Some(p) => {
            let tok = TextTokenizer::from_file(&p).unwrap();
            let t = tok
                .chat_template()
                .expect("tokenizer_config.json has a template");
            let out = render_chat(t, &msgs, false, "", "<|im_end|>").unwrap();
            let want = "<|im_start|>system\n You are terse. <|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n";
            assert_eq!(out, want);
            // The rendered prompt tokenizes with its markers as single special tokens.
            let ids = tok.encode(&out, false).unwrap();
            assert_eq!(ids.iter().filter(|&&i| i == 151644).count(), 4);
            assert_eq!(
                tok.decode(&ids, true).unwrap(),
                out.replace("<|im_start|>", "").replace("<|im_end|>", "")
            );
        }
        None => skip("tokenizers/qwen2.5/tokenizer.json"),
    }
}
