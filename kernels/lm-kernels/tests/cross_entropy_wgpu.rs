//! The fused cross-entropy kernel against tensor ops on burn-wgpu (lavapipe in CI): per-row
//! loss and the gradient of the mean, vocabularies below, at and above the cube width.
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Wgpu};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use lm_kernels::cross_entropy::cross_entropy_rows;

type B = Autodiff<Wgpu<f32, i32>>;

fn check(rows: usize, vocab: usize, scale: f32) {
    let device = Default::default();
    let logits = Tensor::<B, 2>::random([rows, vocab], Distribution::Normal(0.0, 1.0), &device)
        .mul_scalar(scale);
    let ids: Vec<i64> = (0..rows)
        .map(|r| ((r * 7919 + 13) % vocab) as i64)
        .collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [rows]), &device);

    let fused_in = logits.clone().detach().require_grad();
    let fused = cross_entropy_rows(fused_in.clone(), targets.clone());
    let fused_grads = fused.clone().mean().backward();

    let plain_in = logits.detach().require_grad();
    let max = plain_in.clone().max_dim(1).detach();
    let lse = (plain_in.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let picked = plain_in.clone().gather(1, targets.unsqueeze_dim(1));
    let plain: Tensor<B, 1> = (lse - picked).squeeze_dim(1);
    let plain_grads = plain.clone().mean().backward();

    let close = |what: &str, a: Vec<f32>, b: Vec<f32>, tol: f32| {
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what} [{i}] rows {rows} vocab {vocab}: {x} vs {y}"
            );
        }
    };
    close(
        "loss",
        fused.into_data().to_vec().unwrap(),
        plain.into_data().to_vec().unwrap(),
        1e-5,
    );
    close(
        "grad",
        fused_in
            .grad(&fused_grads)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap(),
        plain_in
            .grad(&plain_grads)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap(),
        1e-6,
    );
}

#[test]
fn kernel_matches_tensor_ops() {
    for (rows, vocab) in [(1, 1), (3, 5), (4, 256), (5, 300), (2, 1000)] {
        check(rows, vocab, 1.0);
    }
    // Large logits: the online max keeps exp in range.
    check(3, 700, 1000.0);
}
