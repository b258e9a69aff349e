//! The precision policy's plumbing on the CPU: ndarray has no bf16, so the mixed path is
//! exercised with f64 products over f32 weights; a missing cast would mix dtypes in one op.

use burn::tensor::{DType, Int, Tensor, TensorData};
use lm_core::backends::{NdArray, NdArrayAutodiff};
use lm_core::config::Precision;
use lm_core::functional::cross_entropy;
use lm_core::params::{named_grads, named_params};
use lm_core::{LmError, TransformerConfig, TransformerLm};

fn tiny(precision: Precision) -> TransformerConfig {
    TransformerConfig {
        precision,
        ..TransformerConfig::new(32, 16, 16, 2, 2, 40)
    }
}

fn batch() -> (
    Tensor<NdArrayAutodiff, 2, Int>,
    Tensor<NdArrayAutodiff, 2, Int>,
) {
    let tokens: Vec<i64> = (0..2 * 9).map(|i| (i * 7 + 3) % 32).collect();
    let all = Tensor::<NdArrayAutodiff, 2, Int>::from_data(
        TensorData::new(tokens, [2, 9]),
        &Default::default(),
    );
    (all.clone().slice([0..2, 0..8]), all.slice([0..2, 1..9]))
}

#[test]
fn bf16_mixed_on_a_backend_without_bf16_names_the_config_key() {
    let err = TransformerLm::<NdArray>::new(&tiny(Precision::Bf16Mixed), 0, &Default::default())
        .unwrap_err();
    match err {
        LmError::Config { field, reason } => {
            assert_eq!(field, "model.precision");
            assert!(reason.contains("BF16"), "{reason}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn precision_parses_from_config_names() {
    let parse = |s: &str| serde_json::from_str::<Precision>(s).unwrap();
    assert_eq!(parse("\"f32\""), Precision::F32);
    assert_eq!(parse("\"bf16-mixed\""), Precision::Bf16Mixed);
    assert!(serde_json::from_str::<Precision>("\"bf16\"").is_err());
    assert_eq!(tiny(Precision::default()).precision, Precision::F32);
}

#[test]
fn mixed_products_keep_f32_logits_weights_and_gradients() {
    let device = Default::default();
    let reference =
        TransformerLm::<NdArrayAutodiff>::new(&tiny(Precision::F32), 3, &device).unwrap();
    let mixed = reference.clone().with_compute_dtype(DType::F64);
    let (input, target) = batch();

    let run = |model: &TransformerLm<NdArrayAutodiff>| {
        let logits = model.forward(input.clone());
        assert_eq!(
            logits.dtype(),
            DType::F32,
            "logits leave in the residual dtype"
        );
        let loss = cross_entropy(logits.clone(), target.clone());
        let grads = named_grads(model, &loss.backward());
        (logits.into_data().to_vec::<f32>().unwrap(), grads)
    };
    let (ref_logits, ref_grads) = run(&reference);
    let (mixed_logits, mixed_grads) = run(&mixed);
    for (a, b) in ref_logits.iter().zip(&mixed_logits) {
        assert!((a - b).abs() < 1e-4, "logits {a} vs {b}");
    }
    assert_eq!(mixed_grads.len(), named_params(&mixed).len());
    for (name, grad) in &mixed_grads {
        assert_eq!(
            grad.values.dtype(),
            DType::F32,
            "{name}: gradient is not f32"
        );
        let expected = ref_grads[name]
            .values
            .clone()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let got = grad.values.clone().into_data().to_vec::<f32>().unwrap();
        let scale = expected.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
        for (e, g) in expected.iter().zip(&got) {
            assert!((e - g).abs() <= 1e-3 * scale, "{name}: {e} vs {g}");
        }
    }
    for (name, param) in named_params(&mixed) {
        assert_eq!(
            param.values.dtype(),
            DType::F32,
            "{name}: master weight is not f32"
        );
    }
}
