//! Model-level behaviour on the CPU backend: names, file round trips, bad input, training.

use burn::tensor::{Int, Tensor, TensorData};
use lm_core::backends::{NdArray, NdArrayAutodiff};
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, AdamWConfig, clip_gradients};
use lm_core::params::{
    load_safetensors, named_grads, named_params, save_safetensors, write_safetensors_f32,
};
use lm_core::summary::{ModelSummary, forward_flops_per_token};
use lm_core::{LmError, TransformerConfig, TransformerLm};

fn tiny() -> TransformerConfig {
    TransformerConfig::new(32, 16, 16, 2, 2, 40)
}

fn flat_values(model: &TransformerLm<NdArray>) -> Vec<(String, Vec<f32>)> {
    named_params(model)
        .into_iter()
        .map(|(n, t)| (n, t.values.into_data().to_vec::<f32>().unwrap()))
        .collect()
}

fn ids(rows: &[&[i64]]) -> Tensor<NdArray, 2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), seq]),
        &Default::default(),
    )
}

#[test]
fn parameter_names_are_the_course_state_dict() {
    let model = TransformerLm::<NdArray>::new(&tiny(), 0, &Default::default()).unwrap();
    let names: Vec<String> = named_params(&model).into_keys().collect();
    let mut expected = vec![
        "token_embeddings.weight".to_string(),
        "ln_final.weight".into(),
        "lm_head.weight".into(),
    ];
    for i in 0..2 {
        for p in [
            "attn.q_proj",
            "attn.k_proj",
            "attn.v_proj",
            "attn.output_proj",
            "ln1",
            "ln2",
            "ffn.w1",
            "ffn.w2",
            "ffn.w3",
        ] {
            expected.push(format!("layers.{i}.{p}.weight"));
        }
    }
    expected.sort();
    assert_eq!(names, expected);
    let shapes = named_params(&model);
    assert_eq!(shapes["layers.1.ffn.w2.weight"].shape, vec![16, 40]);
    assert_eq!(shapes["lm_head.weight"].shape, vec![32, 16]);
}

#[test]
fn seed_fixes_weights() {
    let device = Default::default();
    let a = flat_values(&TransformerLm::<NdArray>::new(&tiny(), 5, &device).unwrap());
    let b = flat_values(&TransformerLm::<NdArray>::new(&tiny(), 5, &device).unwrap());
    let c = flat_values(&TransformerLm::<NdArray>::new(&tiny(), 6, &device).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn safetensors_round_trip_gives_identical_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let device = Default::default();
    let original = TransformerLm::<NdArray>::new(&tiny(), 1, &device).unwrap();
    save_safetensors(&original, &path).unwrap();
    let other = TransformerLm::<NdArray>::new(&tiny(), 2, &device).unwrap();
    let loaded = load_safetensors(other, &path).unwrap();
    assert_eq!(flat_values(&original), flat_values(&loaded));
    let x = ids(&[&[1, 2, 3, 4, 5]]);
    let a = original
        .forward(x.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = loaded.forward(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    // No temp file is left behind by the atomic write.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

/// Writes the model's tensors except those `edit` drops or reshapes.
fn write_edited(path: &std::path::Path, edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) {
    let model = TransformerLm::<NdArray>::new(&tiny(), 1, &Default::default()).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = named_params(&model)
        .into_iter()
        .filter_map(|(name, t)| {
            let shape = edit(&name, t.shape.clone())?;
            let n: usize = shape.iter().product();
            Some((name, shape, vec![0u8; 4 * n]))
        })
        .collect();
    write_safetensors_f32(&tensors, None, path).unwrap();
}

#[test]
fn loading_names_the_missing_or_misshaped_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let fresh = || TransformerLm::<NdArray>::new(&tiny(), 0, &device).unwrap();

    let missing = dir.path().join("missing.safetensors");
    write_edited(&missing, |n, s| (n != "layers.1.ln2.weight").then_some(s));
    let err = load_safetensors(fresh(), &missing).unwrap_err();
    assert!(
        matches!(&err, LmError::MissingTensor { tensor, .. } if tensor == "layers.1.ln2.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("missing.safetensors"), "{err}");

    let misshaped = dir.path().join("misshaped.safetensors");
    write_edited(&misshaped, |n, s| {
        Some(if n == "lm_head.weight" {
            vec![31, 16]
        } else {
            s
        })
    });
    let err = load_safetensors(fresh(), &misshaped)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`lm_head.weight`") && err.contains("[31, 16]") && err.contains("[32, 16]"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file").unwrap();
    let err = load_safetensors(fresh(), &garbage).unwrap_err().to_string();
    assert!(
        err.contains("garbage.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );

    let absent = dir.path().join("absent.safetensors");
    let err = load_safetensors(fresh(), &absent).unwrap_err().to_string();
    assert!(err.contains("absent.safetensors"), "{err}");
}

#[test]
fn bad_configs_and_inputs_are_errors_not_panics() {
    let device = Default::default();
    let bad = TransformerConfig {
        num_heads: 3,
        ..tiny()
    };
    let err = TransformerLm::<NdArray>::new(&bad, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("d_model"), "{err}");
    let odd = TransformerConfig {
        d_model: 18,
        num_heads: 2,
        ..tiny()
    };
    let err = TransformerLm::<NdArray>::new(&odd, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("odd head dim"), "{err}");

    let model = TransformerLm::<NdArray>::new(&tiny(), 0, &device).unwrap();
    let too_long = ids(&[&[1; 17]]);
    let err = model.try_forward(too_long).unwrap_err().to_string();
    assert!(
        err.contains("input_ids") && err.contains("context_length = 16"),
        "{err}"
    );
}

#[test]
fn logits_are_causal() {
    // Changing a later token must not change earlier positions' logits.
    let model = TransformerLm::<NdArray>::new(&tiny(), 3, &Default::default()).unwrap();
    let a = model
        .forward(ids(&[&[1, 2, 3, 4, 5, 6]]))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = model
        .forward(ids(&[&[1, 2, 3, 4, 9, 9]]))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let per_pos = tiny().vocab_size;
    assert_eq!(a[..4 * per_pos], b[..4 * per_pos]);
    assert_ne!(a[4 * per_pos..], b[4 * per_pos..]);
}

#[test]
fn adamw_training_memorises_a_sequence() {
    let device = Default::default();
    let mut model = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 0, &device).unwrap();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    });
    let (input, target) = next_token_pair(7, 3);
    let mut losses = vec![];
    for _ in 0..60 {
        let loss = cross_entropy(model.forward(input.clone()), target.clone());
        losses.push(loss.clone().into_scalar());
        let mut grads = named_grads(&model, &loss.backward());
        assert_eq!(
            grads.len(),
            named_params(&model).len(),
            "every parameter gets a gradient"
        );
        clip_gradients(&mut grads, 1.0, 1e-6);
        model = opt.step_module(model, &grads, 1e-2);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    // Uniform guessing over 32 tokens is ln 32 ≈ 3.47.
    assert!((first - 32f32.ln()).abs() < 1.0, "initial loss {first}");
    assert!(last < 0.1, "loss only went {first} -> {last}: {losses:?}");
    assert_eq!(opt.step, 60);
    assert_eq!(opt.moments.len(), named_params(&model).len());
}

#[test]
fn parameter_count_and_flops_follow_the_handout() {
    let cfg = tiny();
    let model = TransformerLm::<NdArray>::new(&cfg, 0, &Default::default()).unwrap();
    let s = ModelSummary::new(&model, &cfg, 2, 16);
    let (v, d, f, l) = (cfg.vocab_size, cfg.d_model, cfg.d_ff, cfg.num_layers);
    assert_eq!(
        s.total_params,
        2 * v * d + l * (4 * d * d + 3 * d * f + 2 * d) + d
    );
    assert_eq!(s.non_embedding_params, s.total_params - v * d);
    // GPT-2 XL at 1024 tokens: the handout's ≈ 4.5 TFLOPs per forward sequence.
    let xl = TransformerConfig::new(50_257, 1024, 1600, 48, 25, 6400);
    let per_seq = forward_flops_per_token(&xl, 1024) * 1024.0;
    assert!((per_seq / 4.513e12 - 1.0).abs() < 1e-3, "{per_seq:e}");
    assert!(s.to_string().contains("lm_head.weight"));
}

/// The fused AdamW step (flat buffers, clipping folded in) computes what the per-parameter
/// step computes after on-device clipping, with the clip active and inactive, also when its
/// buffers are cut into chunks (here of ≤ 300 values, so most parameters are one chunk each
/// and the smallest share one; parameters of 1000+ values alone), and its state reads back
/// by name and continues in the per-parameter step.
#[test]
fn fused_adamw_matches_per_parameter_adamw() {
    use lm_core::optim::{clip_to_norm_on_device, squared_norm_tensor};
    let device = Default::default();
    let config = AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Default::default()
    };
    let start = TransformerLm::<NdArrayAutodiff>::new(&tiny(), 4, &device).unwrap();
    let (input, target) = next_token_pair(5, 1);
    // A tight limit clips every step; a loose one never does.
    for max_norm in [0.05, 1e6] {
        let (mut plain, mut fused, mut chunked) = (start.clone(), start.clone(), start.clone());
        let (mut opt_plain, mut opt_fused) =
            (AdamW::new(config.clone()), AdamW::new(config.clone()));
        let mut opt_chunked = AdamW::new(config.clone())
            .with_fused_chunk(300)
            .with_alone_min(1000);
        for _ in 0..4 {
            let loss = cross_entropy(plain.forward(input.clone()), target.clone());
            let mut grads = named_grads(&plain, &loss.backward());
            let sq = squared_norm_tensor(&grads).unwrap();
            clip_to_norm_on_device(&mut grads, sq, max_norm, 1e-6);
            plain = opt_plain.step_module(plain, &grads, 1e-2);

            let loss = cross_entropy(fused.forward(input.clone()), target.clone());
            let grads = named_grads(&fused, &loss.backward());
            let (next, sq) = opt_fused.step_module_fused(fused, &grads, 1e-2, Some(max_norm));
            fused = next;
            let sq = sq.into_scalar();
            assert!(sq > 0.0);

            let loss = cross_entropy(chunked.forward(input.clone()), target.clone());
            let grads = named_grads(&chunked, &loss.backward());
            let (next, sq_chunked) =
                opt_chunked.step_module_fused(chunked, &grads, 1e-2, Some(max_norm));
            chunked = next;
            let sq_chunked = sq_chunked.into_scalar();
            assert!((sq - sq_chunked).abs() <= 1e-5 * sq, "{sq} vs {sq_chunked}");
        }
        assert!(
            opt_chunked.fused_chunks() > 5,
            "{} chunks",
            opt_chunked.fused_chunks()
        );
        let (a, b, c) = (
            flat_values_ad(&plain),
            flat_values_ad(&fused),
            flat_values_ad(&chunked),
        );
        for (((name, x), (_, y)), (_, z)) in a.iter().zip(&b).zip(&c) {
            for ((p, q), r) in x.iter().zip(y).zip(z) {
                assert!(
                    (p - q).abs() <= 1e-5 * p.abs().max(1e-2),
                    "{name}: {p} vs {q}"
                );
                assert!(
                    (q - r).abs() <= 1e-5 * q.abs().max(1e-2),
                    "{name} chunked: {q} vs {r}"
                );
            }
        }
        let chunked_moments = opt_chunked.moments_by_name();
        assert_eq!(chunked_moments.len(), opt_plain.moments.len());
        let by_name = opt_fused.moments_by_name();
        assert_eq!(by_name.len(), opt_plain.moments.len());
        for (name, m) in &opt_plain.moments {
            let x = m.v.to_data().to_vec::<f32>().unwrap();
            for other in [&by_name, &chunked_moments] {
                let y = other[name].v.to_data().to_vec::<f32>().unwrap();
                assert_eq!(x.len(), y.len(), "{name}");
                for (p, q) in x.iter().zip(&y) {
                    assert!(
                        (p - q).abs() <= 1e-5 * p.abs().max(1e-8),
                        "{name} v: {p} vs {q}"
                    );
                }
            }
        }
        // Switching back to the per-parameter step keeps the state (no reset to zeros).
        let loss = cross_entropy(fused.forward(input.clone()), target.clone());
        let grads = named_grads(&fused, &loss.backward());
        let _ = opt_fused.step_module(fused, &grads, 1e-2);
        assert_eq!(opt_fused.step, 5);
        assert_eq!(opt_fused.moments.len(), by_name.len());
    }
}

fn flat_values_ad(model: &TransformerLm<NdArrayAutodiff>) -> Vec<(String, Vec<f32>)> {
    named_params(model)
        .into_iter()
        .map(|(n, t)| (n, t.values.into_data().to_vec::<f32>().unwrap()))
        .collect()
}

/// A 12-token sequence `(i·step + offset) mod 32` as (input, next-token target), `[1, 12]`.
fn next_token_pair(
    step: i64,
    offset: i64,
) -> (
    Tensor<NdArrayAutodiff, 2, Int>,
    Tensor<NdArrayAutodiff, 2, Int>,
) {
    let device = Default::default();
    let seq: Vec<i64> = (0..13).map(|i| (i * step + offset) % 32).collect();
    let ids = |range: std::ops::Range<usize>| {
        Tensor::<NdArrayAutodiff, 2, Int>::from_data(
            TensorData::new(seq[range].to_vec(), [1, 12]),
            &device,
        )
    };
    (ids(0..12), ids(1..13))
}
