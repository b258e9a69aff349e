//! Decoding through the decode-step paths — plain loops on ndarray, the kernels on wgpu over
//! lavapipe (`--features wgpu`) — gives the logits of the tensor-op path (autodiff backends
//! never take the decode paths), step by step, with rows of different lengths, an idle row
//! and a row prefilled mid-way (continuous batching).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use lm_core::backends::{NdArray, NdArrayAutodiff};
use lm_core::generate::CausalLm;
use lm_core::pretrained::weights::RandomWeights;
use lm_core::pretrained::{Decoder, DecoderConfig};

fn config() -> DecoderConfig {
    // Grouped-query heads (4 query heads over 2 kv heads), q/k/v biases, head dim 16.
    DecoderConfig::from_hf_json(&serde_json::json!({
        "model_type": "qwen2",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 97,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 256,
        "tie_word_embeddings": true
    }))
    .unwrap()
}

/// Logits of every call of a fixed schedule: prefill rows 0 and 2, decode them, prefill row 1
/// mid-way, then decode all three (row 2 idle for two steps).
fn schedule<B: Backend>(device: &B::Device) -> Vec<Vec<f32>> {
    // Weights of std 0.3 so the logits differ clearly between tokens.
    let model = Decoder::<B>::load(config(), &RandomWeights::new(7, 0.3), device).unwrap();
    let mut cache = model.new_cache(3, 200);
    let mut out = Vec::new();
    let mut keep = |t: Tensor<B, 2>| out.push(t.into_data().convert::<f32>().to_vec().unwrap());
    let long: Vec<u32> = (0..70).map(|i| (i * 13 + 5) % 97).collect();
    keep(model.prefill(&mut cache, &[0, 2], &[&[3, 1, 4, 1, 5], &long]));
    keep(model.decode(&mut cache, &[0, 2], &[9, 2]));
    keep(model.prefill(&mut cache, &[1], &[&[8, 8, 8]]));
    for step in 0..6u32 {
        let rows: &[usize] = if step < 2 { &[0, 1] } else { &[0, 1, 2] };
        let tokens: Vec<u32> = rows
            .iter()
            .map(|&r| (step * 11 + r as u32 * 5) % 97)
            .collect();
        keep(model.decode(&mut cache, rows, &tokens));
    }
    out
}

/// Every call's logits of `ours` against `reference`, relative to 2e-4.
fn assert_same_logits(ours: &[Vec<f32>], reference: &[Vec<f32>]) {
    assert_eq!(ours.len(), reference.len());
    for (call, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(a.len(), b.len(), "call {call}");
        let spread = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            spread > 0.5,
            "call {call}: logits too flat to compare ({spread})"
        );
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 2e-4 * (1.0 + y.abs()),
                "call {call}, logit {i}: decode path {x}, tensor ops {y}"
            );
        }
    }
}

fn tensor_op_reference() -> Vec<Vec<f32>> {
    assert!(!lm_core::kernels::has_decode_kernels::<NdArrayAutodiff>(16));
    schedule::<NdArrayAutodiff>(&Default::default())
}

#[test]
fn cpu_decode_matches_the_tensor_op_decode() {
    assert!(lm_core::kernels::has_decode_kernels::<NdArray>(16));
    assert_same_logits(
        &schedule::<NdArray>(&Default::default()),
        &tensor_op_reference(),
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn kernel_decode_matches_the_tensor_op_decode() {
    use lm_core::backends::Wgpu;
    assert!(
        lm_core::kernels::has_decode_kernels::<Wgpu>(16),
        "wgpu builds have the decode kernels"
    );
    assert_same_logits(
        &schedule::<Wgpu>(&Default::default()),
        &tensor_op_reference(),
    );
}
