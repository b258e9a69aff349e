//! The pretrained-model tokenizer against reference ids: llama.cpp's tokenizer test vectors
//! (vocab-only GGUFs and the HF tokenizer.json files), Hugging Face reference encodings,
//! the gguf_forward golden cases (prompt ids and chat templates of the two real models) and
//! llama.cpp's prompt ids and generations.
//!
//! Assets come from `$LM_ASSETS` (default `~/.cache/lm-assets`) and `$LM_SHARED`; a test
//! whose files are absent prints a note and skips (`shared/fetch-assets --tokenizers`,
//! `--models`).

mod tok_common;

use lm_core::pretrained::chat::{ChatMessage, render_chat};
use lm_core::pretrained::tokenizer::TextTokenizer;
use serde_json::Value;
use tok_common::{VOCABS, asset, gguf_tokenizer, ids_of, json, shared, skip};

/// The `.inp` texts (each followed by a marker line) and `.out` ids (one line each).
fn vectors(dir: &str, gguf: &str) -> Option<Vec<(String, Vec<u32>)>> {
    let inp = asset(&format!("tokenizers/{dir}/{gguf}.inp"))?;
    let out = asset(&format!("tokenizers/{dir}/{gguf}.out"))?;
    let inp = std::fs::read_to_string(inp).unwrap();
    let out = std::fs::read_to_string(out).unwrap();
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    assert_eq!(texts.pop(), Some(""), "the .inp file ends with a marker");
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), ids.len(), "{dir}: .inp and .out disagree");
    Some(texts.into_iter().map(str::to_string).zip(ids).collect())
}

/// Every vector must encode exactly; mismatches are listed before failing.
fn check_vectors(name: &str, tok: &TextTokenizer, cases: &[(String, Vec<u32>)]) {
    let mut bad = Vec::new();
    for (text, want) in cases {
        let got = tok.encode(text, false).unwrap();
        if &got != want {
            bad.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    eprintln!("{name}: {} vectors match", cases.len());
}

#[test]
fn llama_cpp_vectors_from_vocab_gguf_and_tokenizer_json() {
    for (dir, gguf) in VOCABS {
        let Some(cases) = vectors(dir, gguf) else {
            skip(&format!("tokenizers/{dir}/{gguf}.inp/.out"));
            continue;
        };
        assert_eq!(cases.len(), 46);
        match asset(&format!("tokenizers/{dir}/{gguf}")) {
            Some(p) => check_vectors(&format!("{gguf} (GGUF)"), &gguf_tokenizer(&p), &cases),
            None => skip(&format!("tokenizers/{dir}/{gguf}")),
        }
        match asset(&format!("tokenizers/{dir}/tokenizer.json")) {
            Some(p) => {
                let tok = TextTokenizer::from_file(&p).unwrap();
                check_vectors(&format!("{dir}/tokenizer.json"), &tok, &cases);
            }
            None => skip(&format!("tokenizers/{dir}/tokenizer.json")),
        }
    }
}

#[test]
fn hugging_face_reference_encodings_and_decodes() {
    let Some(path) = asset("tokenizers/reference-encodings.json") else {
        return skip("tokenizers/reference-encodings.json");
    };
    let refs = json(&path);
    for (dir, gguf) in VOCABS {
        let Some(tj) = asset(&format!("tokenizers/{dir}/tokenizer.json")) else {
            skip(&format!("tokenizers/{dir}/tokenizer.json"));
            continue;
        };
        let from_json = TextTokenizer::from_file(&tj).unwrap();
        let from_gguf = asset(&format!("tokenizers/{dir}/{gguf}")).map(|p| gguf_tokenizer(&p));
        let r = &refs["tokenizers"][dir];
        assert_eq!(
            from_json.vocab_size() as u64,
            r["vocab_size_with_added"].as_u64().unwrap()
        );
        for case in r["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let ids = ids_of(&case["ids"]);
            assert_eq!(
                from_json.encode(text, false).unwrap(),
                ids,
                "{dir} json {text:?}"
            );
            let decoded = case["decoded"].as_str().unwrap();
            assert_eq!(
                from_json.decode(&ids, false).unwrap(),
                decoded,
                "{dir} {text:?}"
            );
            if let Some(g) = &from_gguf {
                assert_eq!(g.encode(text, false).unwrap(), ids, "{dir} gguf {text:?}");
                assert_eq!(
                    g.decode(&ids, false).unwrap(),
                    decoded,
                    "{dir} gguf {text:?}"
                );
            }
        }
    }
}

#[test]
fn gguf_forward_golden_prompts_and_chat_templates() {
    let golden = shared().join("golden");
    let manifest = json(&golden.join("manifest.json"));
    let cases: Vec<&Value> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "gguf_forward")
        .collect();
    assert!(!cases.is_empty(), "no gguf_forward cases in the manifest");
    let bytes = std::fs::read(golden.join("cases/gguf_forward.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for case in cases {
        let attrs = &case["attrs"];
        let name = case["name"].as_str().unwrap();
        let rel = attrs["model_path"].as_str().unwrap();
        let Some(model) = asset(rel) else {
            skip(rel);
            continue;
        };
        let tok = gguf_tokenizer(&model);
        assert_eq!(
            tok.vocab_size() as u64,
            attrs["vocab_size"].as_u64().unwrap()
        );
        let view = st.tensor(&format!("{name}/inputs.input_ids")).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::I64);
        let want: Vec<u32> = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect();
        let prompt = attrs["prompt"].as_str().unwrap();
        assert_eq!(tok.encode(prompt, false).unwrap(), want, "{name}");
        // Both files have add_bos_token = false: add_special_tokens changes nothing.
        assert_eq!(
            tok.encode(prompt, true).unwrap(),
            want,
            "{name} (add_special_tokens)"
        );
        if attrs["chat_template"] == true {
            let template = tok
                .chat_template()
                .expect("the model carries a chat template");
            let user = attrs["user_message"].as_str().unwrap();
            let token = |id: Option<u32>| id.and_then(|i| tok.token(i)).unwrap_or_default();
            let (bos, eos) = (
                token(tok.bos_token_id()),
                token(tok.eos_token_ids().first().copied()),
            );
            let msgs = [ChatMessage::new("user", user)];
            assert_eq!(
                render_chat(template, &msgs, true, &bos, &eos).unwrap(),
                prompt,
                "{name}"
            );
        }
        checked += 1;
    }
    eprintln!("gguf_forward: {checked} cases checked");
}

#[test]
fn llama_cpp_reference_prompt_ids_and_generations() {
    let Some(path) = asset("models/llama-cpp-reference.json") else {
        return skip("models/llama-cpp-reference.json");
    };
    let reference = json(&path);
    for (rel, model) in reference["models"].as_object().unwrap() {
        let Some(file) = asset(rel) else {
            skip(rel);
            continue;
        };
        let tok = gguf_tokenizer(&file);
        assert_eq!(
            tok.eos_token_ids()[0] as u64,
            model["eos"].as_u64().unwrap(),
            "{rel}"
        );
        for case in model["cases"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            // llama.cpp ran with add_special = true: the files say add_bos_token = false.
            let ids = tok.encode(prompt, true).unwrap();
            assert_eq!(ids, ids_of(&case["prompt_ids"]), "{rel} {prompt:?}");
            // Generation stopped at eos, which is the last id but not part of the text.
            let mut greedy = ids_of(&case["greedy_ids"]);
            if greedy
                .last()
                .is_some_and(|id| tok.eos_token_ids().contains(id))
            {
                greedy.pop();
            }
            let text = tok.decode(&greedy, false).unwrap();
            assert_eq!(
                text,
                case["greedy_text"].as_str().unwrap(),
                "{rel} {prompt:?}"
            );
        }
    }
}
