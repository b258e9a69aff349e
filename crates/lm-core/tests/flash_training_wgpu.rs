//! Training with the FlashAttention-2 kernel follows the same loss curve as the plain
//! attention (issue 5's "done means"), on wgpu over lavapipe:
//! `cargo nextest run -p lm-core --features wgpu`.
#![cfg(feature = "wgpu")]

use burn::tensor::{Int, Tensor, TensorData};
use lm_core::backends::WgpuAutodiff;
use lm_core::config::AttentionKernel;
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, AdamWConfig};
use lm_core::params::named_grads;
use lm_core::{TransformerConfig, TransformerLm};

type B = WgpuAutodiff;

fn config(attention: AttentionKernel) -> TransformerConfig {
    TransformerConfig {
        attention,
        ..TransformerConfig::new(64, 40, 32, 2, 2, 64)
    }
}

fn losses(attention: AttentionKernel) -> Vec<f32> {
    let device = Default::default();
    let mut model = TransformerLm::<B>::new(&config(attention), 7, &device).unwrap();
    // A length that is not a multiple of the kernel's tiles, and two sequences.
    let tokens: Vec<i64> = (0..2 * 38).map(|i| (i * 13 + i / 5) % 64).collect();
    let all = Tensor::<B, 2, Int>::from_data(TensorData::new(tokens, [2, 38]), &device);
    let (input, target) = (all.clone().slice([0..2, 0..37]), all.slice([0..2, 1..38]));
    let mut opt = AdamW::new(AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    });
    (0..25)
        .map(|_| {
            let loss = cross_entropy(model.forward(input.clone()), target.clone());
            let value = loss.clone().into_scalar();
            let grads = named_grads(&model, &loss.backward());
            let (next, _) = opt.step_module_fused(model.clone(), &grads, 1e-2, Some(1.0));
            model = next;
            value
        })
        .collect()
}

#[test]
fn flash_kernel_trains_like_plain_attention() {
    assert!(
        lm_core::kernels::flash_available::<B>(),
        "wgpu builds have the kernel"
    );
    let (flash, plain) = (
        losses(AttentionKernel::Auto),
        losses(AttentionKernel::Plain),
    );
    for (step, (f, p)) in flash.iter().zip(&plain).enumerate() {
        assert!(
            (f - p).abs() <= 2e-3 * p.abs().max(1.0),
            "step {step}: flash {f} vs plain {p}"
        );
    }
    let (first, last) = (plain[0], *plain.last().unwrap());
    assert!(last < 0.5 * first, "the loss must drop: {first} -> {last}");
}
