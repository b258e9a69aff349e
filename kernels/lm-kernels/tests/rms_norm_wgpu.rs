//! The fused RMSNorm kernels against tensor ops on burn-wgpu (lavapipe in CI): outputs and
//! the gradients of both inputs, for widths below, at and above the cube width and row
//! counts that leave a partial chunk in the gain gradient.
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Wgpu};
use burn::tensor::{Distribution, Tensor};
use lm_kernels::rms_norm::rms_norm;

type B = Autodiff<Wgpu<f32, i32>>;

fn close(what: &str, a: Tensor<B, 1>, b: Tensor<B, 1>, tol: f32) {
    let (a, b): (Vec<f32>, Vec<f32>) = (
        a.into_data().to_vec().unwrap(),
        b.into_data().to_vec().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn check(rows: usize, dim: usize) {
    let device = Default::default();
    let eps = 1e-5;
    let x = Tensor::<B, 2>::random([rows, dim], Distribution::Normal(0.0, 2.0), &device);
    let weight = Tensor::<B, 1>::random([dim], Distribution::Normal(1.0, 0.5), &device);
    // An uneven upstream gradient, so every output element matters.
    let d_y = Tensor::<B, 2>::random([rows, dim], Distribution::Normal(0.0, 1.0), &device);

    let (fx, fw) = (
        x.clone().detach().require_grad(),
        weight.clone().detach().require_grad(),
    );
    let fused = rms_norm(fx.clone(), fw.clone(), eps);
    let fused_grads = (fused.clone() * d_y.clone()).sum().backward();

    let (px, pw) = (x.detach().require_grad(), weight.detach().require_grad());
    let inv = px
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    let plain = px.clone() * inv * pw.clone().unsqueeze::<2>();
    let plain_grads = (plain.clone() * d_y).sum().backward();

    let label = format!("rows {rows} dim {dim}");
    close(
        &format!("y {label}"),
        fused.flatten(0, 1),
        plain.flatten(0, 1),
        1e-5,
    );
    let grad = |t: &Tensor<B, 2>, g| Tensor::<B, 2>::from_inner(t.grad(g).unwrap()).flatten(0, 1);
    close(
        &format!("dx {label}"),
        grad(&fx, &fused_grads),
        grad(&px, &plain_grads),
        1e-4,
    );
    let grad_w = |t: &Tensor<B, 1>, g| Tensor::<B, 1>::from_inner(t.grad(g).unwrap());
    close(
        &format!("dw {label}"),
        grad_w(&fw, &fused_grads),
        grad_w(&pw, &plain_grads),
        1e-4,
    );
}

#[test]
fn fused_rms_norm_matches_tensor_ops_forward_and_backward() {
    check(3, 16);
    check(130, 256);
    check(65, 600);
}
