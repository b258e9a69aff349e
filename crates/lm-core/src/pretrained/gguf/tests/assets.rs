//! The two real GGUF models (skipped when `$LM_ASSETS/models/gguf/` lacks them), checked
//! against the header facts in `$LM_SHARED/assets/models/gguf-info.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::super::{GgmlType, GgufFile, GgufValue};

const SMOL: &str = "models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN: &str = "models/gguf/Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf";

use crate::assets::asset;

fn gguf_info() -> Option<Value> {
    let shared = std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let text = std::fs::read_to_string(shared.join("assets/models/gguf-info.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn open(rel: &str) -> Option<GgufFile> {
    let Some(path) = asset(rel) else {
        eprintln!("skipped: $LM_ASSETS/{rel} absent (run shared/fetch-assets --models)");
        return None;
    };
    Some(GgufFile::open(&path).expect("real model opens"))
}

#[test]
fn real_models_hyperparameters() {
    if let Some(f) = open(SMOL) {
        assert_eq!(f.architecture().unwrap(), "llama");
        assert_eq!(f.u64("llama.block_count").unwrap(), 30);
        assert_eq!(f.u64("llama.attention.head_count").unwrap(), 9);
        assert_eq!(f.u64("llama.attention.head_count_kv").unwrap(), 3);
        assert_eq!(f.f32("llama.rope.freq_base").unwrap(), 1e5);
        assert_eq!(f.u64("llama.vocab_size").unwrap(), 49152);
        assert_eq!(f.str_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
        assert_eq!(f.u64("tokenizer.ggml.eos_token_id").unwrap(), 2);
        assert_eq!(f.tensors().len(), 272);
        let emb = f.tensor_info("token_embd.weight").unwrap();
        assert_eq!(
            (emb.ggml_type, emb.dims.as_slice()),
            (GgmlType::Q8_0, &[49152, 576][..])
        );
    }
    if let Some(f) = open(QWEN) {
        assert_eq!(f.architecture().unwrap(), "qwen2");
        assert_eq!(f.u64("qwen2.block_count").unwrap(), 24);
        assert_eq!(f.u64("qwen2.attention.head_count").unwrap(), 14);
        assert_eq!(f.u64("qwen2.attention.head_count_kv").unwrap(), 2);
        assert_eq!(f.f32("qwen2.rope.freq_base").unwrap(), 1e6);
        assert_eq!(
            f.f32("qwen2.attention.layer_norm_rms_epsilon").unwrap(),
            1e-6
        );
        assert_eq!(f.str_array("tokenizer.ggml.tokens").unwrap().len(), 151936);
        assert_eq!(
            f.i32_array("tokenizer.ggml.token_type").unwrap().len(),
            151936
        );
        assert_eq!(f.u64("tokenizer.ggml.eos_token_id").unwrap(), 151645);
        let out = f.tensor_info("output.weight").unwrap();
        assert_eq!(
            (out.ggml_type, out.dims.as_slice()),
            (GgmlType::Q8_0, &[151936, 896][..])
        );
    }
}

/// Every metadata key and tensor listed in gguf-info.json, with its value / type / shape.
#[test]
fn real_models_match_gguf_info() {
    let Some(info) = gguf_info() else {
        eprintln!("skipped: shared/assets/models/gguf-info.json absent");
        return;
    };
    for rel in [SMOL, QWEN] {
        let Some(f) = open(rel) else { continue };
        let want = &info["files"][rel];
        assert_eq!(
            u64::from(f.version()),
            want["gguf_version"].as_u64().unwrap()
        );
        assert_eq!(f.data_offset(), want["data_offset"].as_u64().unwrap());
        let meta = want["metadata"].as_object().unwrap();
        assert_eq!(f.metadata().len(), meta.len(), "{rel}: key count");
        for (key, v) in meta {
            check_value(key, f.get(key).unwrap_or_else(|| panic!("{rel}: {key}")), v);
        }
        let tensors = want["tensors"].as_array().unwrap();
        assert_eq!(f.tensors().len(), tensors.len());
        let mut types = BTreeMap::new();
        for (t, w) in f.tensors().iter().zip(tensors) {
            assert_eq!(t.name, w[0].as_str().unwrap());
            assert_eq!(t.ggml_type.name(), w[1].as_str().unwrap(), "{}", t.name);
            let mut dims: Vec<usize> = w[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            dims.reverse();
            assert_eq!(t.dims, dims, "{}", t.name);
            *types.entry(t.ggml_type.name().to_string()).or_insert(0u64) += 1;
        }
        let want_types: BTreeMap<String, u64> = want["tensor_types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(types, want_types, "{rel}");
    }
}

/// gguf-info.json stores scalars as JSON values, arrays as "<array of N TYPE>" and long
/// strings cut to a prefix ending in "... (N chars)".
fn check_value(key: &str, got: &GgufValue, want: &Value) {
    match (got, want) {
        (GgufValue::Array(items), Value::String(s)) => {
            let n = items.len().to_string();
            assert!(
                s.starts_with(&format!("<array of {n} ")),
                "{key}: {s} vs {n} items"
            );
        }
        (GgufValue::String(g), Value::String(s)) => match s.rsplit_once("... (") {
            Some((prefix, rest)) if rest.ends_with(" chars)") => {
                assert!(g.starts_with(prefix), "{key}");
                assert_eq!(rest, format!("{} chars)", g.chars().count()), "{key}");
            }
            _ => assert_eq!(g, s, "{key}"),
        },
        (GgufValue::Bool(g), Value::Bool(w)) => assert_eq!(g, w, "{key}"),
        (GgufValue::F32(g), Value::Number(w)) => {
            assert_eq!(f64::from(*g), w.as_f64().unwrap(), "{key}")
        }
        (g, Value::Number(w)) => assert_eq!(g.as_i128(), w.as_i64().map(i128::from), "{key}"),
        (g, w) => panic!("{key}: {g:?} vs {w}"),
    }
}

#[test]
fn real_models_every_tensor_dequantises_to_finite_values() {
    for rel in [SMOL, QWEN] {
        let Some(f) = open(rel) else { continue };
        let mut total = 0usize;
        for t in f.tensors() {
            let (data, dims) = f.tensor_f32(&t.name).unwrap();
            assert_eq!(dims, t.dims);
            assert_eq!(data.len(), dims.iter().product::<usize>(), "{}", t.name);
            if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
                panic!("{rel}: {} [{bad}] = {}", t.name, data[bad]);
            }
            assert!(data.iter().any(|&x| x != 0.0), "{}: all zero", t.name);
            total += data.len();
        }
        let want = gguf_info().and_then(|i| i["files"][rel]["n_params"].as_u64());
        if let Some(want) = want {
            assert_eq!(total as u64, want, "{rel}: parameter count");
        }
    }
}
