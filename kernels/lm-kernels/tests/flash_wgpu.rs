//! The FlashAttention-2 kernel against plain attention from tensor ops, on burn-wgpu (Mesa
//! lavapipe in CI): outputs, logsumexp and gradients, causal and not, lengths that are not
//! multiples of the tiles, every head-dim tile path. `cargo nextest run -p lm-kernels
//! --features wgpu`.
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Wgpu};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Int, Tensor};
use lm_kernels::flash::{FlashAttentionError, dispatch, flash_attention};

type B = Autodiff<Wgpu<f32, i32>>;

/// Plain attention and its logsumexp (the contract the kernel implements).
fn reference<Bk: Backend>(
    q: Tensor<Bk, 4>,
    k: Tensor<Bk, 4>,
    v: Tensor<Bk, 4>,
    causal: bool,
    scale: f32,
) -> (Tensor<Bk, 4>, Tensor<Bk, 3>) {
    let seq = q.dims()[2];
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if causal {
        let device = scores.device();
        let rows = Tensor::<Bk, 1, Int>::arange(0..seq as i64, &device).reshape([seq, 1]);
        let cols = Tensor::<Bk, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let future: Tensor<Bk, 2, Bool> = rows.expand([seq, seq]).lower(cols.expand([seq, seq]));
        let future: Tensor<Bk, 4, Bool> = future.unsqueeze();
        let future = future.expand(scores.shape());
        scores = scores.mask_fill(future, f32::NEG_INFINITY);
    }
    let max = scores.clone().max_dim(3);
    let lse = (scores.clone() - max.clone()).exp().sum_dim(3).log() + max;
    (softmax(scores, 3).matmul(v), lse.squeeze_dim(3))
}

fn assert_close(what: &str, got: Tensor<impl Backend, 4>, want: Tensor<impl Backend, 4>, tol: f32) {
    let (g, w) = (
        got.into_data().to_vec::<f32>().unwrap(),
        want.into_data().to_vec::<f32>().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}: sizes");
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs() / (tol * (1.0 + b.abs())))
        .fold(0.0f32, f32::max);
    assert!(worst <= 1.0, "{what}: off by {worst}× the tolerance {tol}");
}

fn check(batch: usize, heads: usize, seq: usize, head_dim: usize, causal: bool) {
    let device = Default::default();
    let dims = [batch, heads, seq, head_dim];
    let input = || Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
    let (q, k, v, upstream) = (input(), input(), input(), input());
    let scale = 1.0 / (head_dim as f32).sqrt();
    let case = format!("b{batch} h{heads} s{seq} d{head_dim} causal={causal}");

    let track = |t: &Tensor<B, 4>| t.clone().require_grad();
    let (qf, kf, vf) = (track(&q), track(&k), track(&v));
    let (o, lse) = flash_attention(qf.clone(), kf.clone(), vf.clone(), causal, None).unwrap();
    let grads = (o.clone() * upstream.clone()).sum().backward();

    let (qr, kr, vr) = (track(&q), track(&k), track(&v));
    let (o_ref, lse_ref) = reference(qr.clone(), kr.clone(), vr.clone(), causal, scale);
    let grads_ref = (o_ref.clone() * upstream).sum().backward();

    assert_close(&format!("{case} o"), o, o_ref, 1e-5);
    assert_close(
        &format!("{case} lse"),
        lse.unsqueeze_dim(3),
        lse_ref.unsqueeze_dim(3),
        1e-5,
    );
    for (name, a, b) in [("dq", &qf, &qr), ("dk", &kf, &kr), ("dv", &vf, &vr)] {
        let (g, g_ref) = (a.grad(&grads).unwrap(), b.grad(&grads_ref).unwrap());
        assert_close(&format!("{case} {name}"), g, g_ref, 1e-4);
    }
}

#[test]
fn kernel_matches_plain_attention() {
    assert!(dispatch::supports::<B>() && dispatch::supports::<Wgpu<f32, i32>>());
    // Tiles are 32 rows for head_dim ≤ 64 and 16 above: lengths below, at and across them.
    for (batch, heads, seq, head_dim) in [(1, 1, 1, 16), (2, 3, 33, 16), (1, 2, 70, 40)] {
        for causal in [false, true] {
            check(batch, heads, seq, head_dim, causal);
        }
    }
    check(1, 2, 45, 64, true);
    check(1, 1, 37, 128, true);
    check(1, 1, 19, 96, false);
}

#[test]
fn bad_inputs_are_errors() {
    let device = Default::default();
    let q = Tensor::<B, 4>::zeros([1, 1, 4, 8], &device);
    let k = Tensor::<B, 4>::zeros([1, 1, 5, 8], &device);
    let err = flash_attention(q.clone(), k, q.clone(), true, None).unwrap_err();
    assert!(matches!(
        err,
        FlashAttentionError::ShapeMismatch { tensor: "k", .. }
    ));
    assert!(err.to_string().contains("[1, 1, 5, 8]"), "{err}");
    let wide = Tensor::<B, 4>::zeros([1, 1, 2, 512], &device);
    let err = flash_attention(wide.clone(), wide.clone(), wide, false, None).unwrap_err();
    assert_eq!(err, FlashAttentionError::HeadDim(512));
}
