//! `Decoder::save_hf_dir` round trip: a random decoder saved as a Hugging Face directory
//! loads back with the same config and the same logits.

use burn::tensor::{Int, Tensor, TensorData};
use lm_core::pretrained::config::Llama3RopeScaling;
use lm_core::pretrained::{Architecture, Decoder, DecoderConfig};

type B = burn::backend::NdArray<f32>;

fn config(arch: Architecture) -> DecoderConfig {
    let qwen = arch == Architecture::Qwen2;
    DecoderConfig {
        arch,
        vocab_size: 97,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope_theta: if qwen { 1e6 } else { 5e5 },
        rope_scaling: (!qwen).then_some(Llama3RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16.0,
        }),
        // Qwen2 with its biases and an untied head; Llama tied, without biases.
        tie_word_embeddings: !qwen,
        attention_bias: qwen,
        max_position_embeddings: 64,
    }
}

fn logits(model: &Decoder<B>) -> Vec<f32> {
    let device = Default::default();
    let ids: Vec<i64> = vec![3, 14, 15, 92, 65, 35, 89, 79, 32, 38];
    let positions: Vec<i64> = (0..5).chain(0..5).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [2, 5]), &device);
    let positions = Tensor::<B, 2, Int>::from_data(TensorData::new(positions, [2, 5]), &device);
    model
        .forward(ids, positions, None)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

fn round_trip(arch: Architecture) {
    let device = Default::default();
    let model = Decoder::<B>::random(config(arch), 7, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    model.save_hf_dir(&out).unwrap();
    let loaded = Decoder::<B>::from_hf_dir(&out, &device).unwrap();
    assert_eq!(loaded.config, model.config);
    assert_eq!(loaded.lm_head.is_some(), arch == Architecture::Qwen2);
    let (want, got) = (logits(&model), logits(&loaded));
    assert_eq!(want.len(), 2 * 5 * 97);
    // Random weights give logits that vary: a zeroed or misnamed tensor could not match.
    assert!(want.iter().any(|&x| (x - want[0]).abs() > 1e-4));
    assert_eq!(want, got, "{arch:?}: logits differ after the round trip");
}

#[test]
fn qwen2_with_biases_and_untied_head_round_trips() {
    round_trip(Architecture::Qwen2);
}

#[test]
fn llama_tied_with_rope_scaling_round_trips() {
    round_trip(Architecture::Llama);
}

#[test]
fn config_json_has_the_hf_keys() {
    let dir = tempfile::tempdir().unwrap();
    let model = Decoder::<B>::random(config(Architecture::Llama), 1, &Default::default()).unwrap();
    model.save_hf_dir(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["architectures"][0], "LlamaForCausalLM");
    assert_eq!(json["num_key_value_heads"], 2);
    assert_eq!(json["attention_bias"], false);
    assert_eq!(json["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(DecoderConfig::from_hf_json(&json).unwrap(), model.config);
}
