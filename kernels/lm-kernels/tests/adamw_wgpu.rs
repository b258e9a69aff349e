//! The AdamW kernel against the handout's rule computed on the host, on burn-wgpu (lavapipe
//! in CI), for lengths that take the widest vector loads (multiples of 4), only scalar ones
//! (odd lengths), and a buffer that is a view into a larger one; outputs go over inputs
//! nothing else holds, never over one that is still shared.
#![cfg(feature = "wgpu")]

use burn::backend::Wgpu;
use burn::tensor::{Distribution, Tensor};
use lm_kernels::adamw::{AdamWScalars, adamw_step};

type B = Wgpu<f32, i32>;

fn host(t: &Tensor<B, 1>) -> Vec<f32> {
    t.to_data().to_vec().unwrap()
}

/// `(param', m', v')` of the kernel's rule, element by element.
fn reference(
    [p, g, m, v]: [&[f32]; 4],
    scale: f32,
    s: AdamWScalars,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..p.len() {
        let g = g[i] * scale;
        let m = s.b1 * m[i] + (1.0 - s.b1) * g;
        let v = s.b2 * v[i] + (1.0 - s.b2) * g * g;
        let stepped = p[i] - s.alpha_t * m / (v.sqrt() + s.eps);
        out.0.push(stepped - s.decay * stepped);
        out.1.push(m);
        out.2.push(v);
    }
    out
}

fn close(what: &str, ours: &[f32], expected: &[f32]) {
    assert_eq!(ours.len(), expected.len(), "{what}: length");
    for (i, (x, y)) in ours.iter().zip(expected).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn check(len: usize, offset: usize) {
    let device = Default::default();
    let random = |mean: f64, std: f64| {
        Tensor::<B, 1>::random([offset + len], Distribution::Normal(mean, std), &device)
            .slice(offset..offset + len)
    };
    let (p, g) = (random(0.0, 1.0), random(0.0, 0.1));
    let m = random(0.0, 0.01);
    // Second moments are non-negative.
    let v = random(0.0, 0.01).abs();
    let scale = Tensor::<B, 1>::from_floats([0.5], &device);
    let scalars = AdamWScalars {
        b1: 0.9,
        b2: 0.95,
        eps: 1e-8,
        alpha_t: 1e-2,
        decay: 1e-3,
    };
    let inputs = [host(&p), host(&g), host(&m), host(&v)];
    let expected = reference(
        [&inputs[0], &inputs[1], &inputs[2], &inputs[3]],
        0.5,
        scalars,
    );
    // A second holder of the first moment: the kernel must leave its buffer alone (the
    // others it may update in place).
    let m_kept = m.clone();
    let (p, m, v) = adamw_step(p, g, m, v, scale, scalars);
    let label = |what: &str| format!("len {len} offset {offset}: {what}");
    close(&label("kept m"), &host(&m_kept), &inputs[2]);
    close(&label("param"), &host(&p), &expected.0);
    close(&label("m"), &host(&m), &expected.1);
    close(&label("v"), &host(&v), &expected.2);
}

#[test]
fn vector_and_scalar_lengths_match_the_rule() {
    for len in [1, 3, 4, 7, 8, 1000, 1001, 4099] {
        check(len, 0);
    }
}

#[test]
fn views_into_larger_buffers_match_the_rule() {
    for (len, offset) in [(64, 64), (64, 3), (1001, 5)] {
        check(len, offset);
    }
}

/// The sum of squares against an f64 sum, on the unfused backend (the kernel launched
/// directly) and through fusion: one value, a partial cube, and more values than the grid
/// has units (the grid-stride loop), at an offset view.
#[test]
fn sum_squares_reads_every_value_once() {
    use burn::backend::wgpu::WgpuRuntime;
    type Unfused = burn_cubecl::CubeBackend<WgpuRuntime, f32, i32, u32>;
    fn check<K: burn::tensor::backend::Backend>() {
        let device = Default::default();
        for len in [1usize, 255, 70_001, 1_000_003] {
            let x = Tensor::<K, 1>::random([len + 3], Distribution::Normal(0.0, 1.5), &device)
                .slice(3..len + 3);
            let values: Vec<f32> = x.clone().into_data().to_vec().unwrap();
            let want: f64 = values.iter().map(|&v| v as f64 * v as f64).sum();
            let Ok(sum) = lm_kernels::adamw::try_sum_squares(x) else {
                panic!("wgpu builds have the sum-of-squares kernel");
            };
            let got = sum.into_data().to_vec::<f32>().unwrap();
            assert_eq!(got.len(), 1);
            let rel = (got[0] as f64 - want).abs() / want;
            assert!(rel < 1e-5, "len {len}: {} vs {want}", got[0]);
            // Ones: every partial sum is an exact integer, so a value skipped or read twice
            // shows.
            let ones = Tensor::<K, 1>::ones([len], &device);
            let Ok(count) = lm_kernels::adamw::try_sum_squares(ones) else {
                unreachable!("the same backend");
            };
            assert_eq!(count.into_data().to_vec::<f32>().unwrap(), [len as f32]);
        }
    }
    check::<Unfused>();
    check::<B>();
}
