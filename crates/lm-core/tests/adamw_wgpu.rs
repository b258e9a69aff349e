//! The one-launch AdamW kernel (the fused step on GPU backends) computes what the
//! per-parameter tensor-op step computes, on wgpu over lavapipe:
//! `cargo nextest run -p lm-core --features wgpu`.
#![cfg(feature = "wgpu")]

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use lm_core::backends::WgpuAutodiff;
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, AdamWConfig, clip_to_norm_on_device, squared_norm_tensor};
use lm_core::params::{named_grads, named_params};
use lm_core::{TransformerConfig, TransformerLm};

type B = WgpuAutodiff;

fn values(model: &TransformerLm<B>) -> Vec<(String, Vec<f32>)> {
    named_params(model)
        .into_iter()
        .map(|(n, t)| (n, t.values.into_data().to_vec::<f32>().unwrap()))
        .collect()
}

#[test]
fn one_launch_adamw_matches_the_per_parameter_step() {
    assert!(
        lm_core::kernels::has_adamw_kernel::<<B as AutodiffBackend>::InnerBackend>(),
        "wgpu builds have the kernel"
    );
    let device = Default::default();
    let config = TransformerConfig::new(64, 16, 32, 2, 2, 64);
    let start = TransformerLm::<B>::new(&config, 3, &device).unwrap();
    let tokens: Vec<i64> = (0..2 * 13).map(|i| (i * 7 + i / 3) % 64).collect();
    let all = Tensor::<B, 2, Int>::from_data(TensorData::new(tokens, [2, 13]), &device);
    let (input, target) = (all.clone().slice([0..2, 0..12]), all.slice([0..2, 1..13]));
    let adamw = || {
        AdamW::new(AdamWConfig {
            lr: 1e-2,
            weight_decay: 0.1,
            ..Default::default()
        })
    };
    // A tight limit clips every step, a loose one never; the kernel also runs per chunk, per
    // parameter with nothing concatenated (chunks of 1 value), and with the parameters of
    // 1000+ values alone and the rest concatenated.
    for (max_norm, chunk, alone) in [
        (0.05, usize::MAX, usize::MAX),
        (1e6, usize::MAX, usize::MAX),
        (0.05, 500, usize::MAX),
        (0.05, 1, usize::MAX),
        (0.05, usize::MAX, 1000),
    ] {
        let (mut plain, mut fused) = (start.clone(), start.clone());
        let (mut opt_plain, mut opt_fused) = (
            adamw(),
            adamw().with_fused_chunk(chunk).with_alone_min(alone),
        );
        // The same gradients (the plain model's) go to both steps, so the two models differ
        // only by the update's rounding, not by forwards that drift apart.
        for _ in 0..3 {
            let loss = cross_entropy(plain.forward(input.clone()), target.clone());
            let grads = named_grads(&plain, &loss.backward());
            fused = opt_fused
                .step_module_fused(fused, &grads, 1e-2, Some(max_norm))
                .0;
            let mut grads = grads;
            let sq = squared_norm_tensor(&grads).unwrap();
            clip_to_norm_on_device(&mut grads, sq, max_norm, 1e-6);
            plain = opt_plain.step_module(plain, &grads, 1e-2);
        }
        for ((name, x), (_, y)) in values(&plain).iter().zip(&values(&fused)) {
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() <= 1e-5 * p.abs().max(1e-2),
                    "max_norm {max_norm}, chunk {chunk}, alone {alone}, {name}: {p} vs {q}"
                );
            }
        }
        let moments = opt_fused.moments_by_name();
        for (name, m) in &opt_plain.moments {
            let x = m.m.to_data().to_vec::<f32>().unwrap();
            let y = moments[name].m.to_data().to_vec::<f32>().unwrap();
            // Relative to the tensor's largest moment: an element that is a near-cancelling sum
            // of the three steps' gradients has no relative accuracy of its own.
            let scale = x.iter().fold(0f32, |a, b| a.max(b.abs()));
            for (p, q) in x.iter().zip(&y) {
                assert!(
                    (p - q).abs() <= 1e-5 * scale,
                    "{name} m: {p} vs {q} (max {scale})"
                );
            }
        }
    }
}
