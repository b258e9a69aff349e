//! The decode-step kernels on burn-wgpu (lavapipe in CI), with and without burn's fusion
//! layer, against a plain reference: the q/k/v step (bias, RoPE, the cache write at each
//! row's slot, a full row left alone, every other entry unchanged) and one-token attention with grouped-query heads,
//! head dims below / at / above the cube width, several chunks of slots, masked holes and a
//! first chunk that is masked whole.
#![cfg(feature = "wgpu")]

use burn::backend::Wgpu;
use burn::backend::wgpu::WgpuRuntime;
use burn::tensor::{Distribution, Int, Tensor, TensorData, TensorPrimitive};
use burn_cubecl::CubeBackend;
use lm_kernels::decode::{DecodeBackend, QkvInputs, decode_attention, decode_qkv};

type Unfused = CubeBackend<WgpuRuntime, f32, i32, u32>;

fn values<const D: usize, K: DecodeBackend>(t: Tensor<K, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

struct Shape {
    rows: usize,
    heads: usize,
    kv_heads: usize,
    max_len: usize,
    len: usize,
    head_dim: usize,
}

/// Row `r`'s additive mask: row 0 sees slots `0..len-10`, row 1 only slot 0 and every
/// third slot, row 2 only the last 5 slots (so a whole first chunk is masked).
fn bias(s: &Shape) -> Vec<f32> {
    let mut bias = vec![f32::NEG_INFINITY; s.rows * s.len];
    for r in 0..s.rows {
        for u in 0..s.len {
            let visible = match r % 3 {
                0 => u + 10 < s.len,
                1 => u % 3 == 0,
                _ => u + 5 >= s.len,
            };
            if visible {
                bias[r * s.len + u] = 0.25 * ((u % 7) as f32 - 3.0);
            }
        }
    }
    bias
}

/// `softmax(q kᵀ scale + bias) v` in f64.
fn reference(s: &Shape, q: &[f32], k: &[f32], v: &[f32], bias: &[f32], scale: f64) -> Vec<f32> {
    let (hd, group) = (s.head_dim, s.heads / s.kv_heads);
    let mut out = vec![0f32; s.rows * s.heads * hd];
    for r in 0..s.rows {
        for h in 0..s.heads {
            let qv = &q[(r * s.heads + h) * hd..][..hd];
            let base = (r * s.kv_heads + h / group) * s.max_len * hd;
            let scores: Vec<f64> = (0..s.len)
                .map(|u| {
                    let key = &k[base + u * hd..][..hd];
                    let dot: f64 = qv.iter().zip(key).map(|(a, b)| *a as f64 * *b as f64).sum();
                    dot * scale + bias[r * s.len + u] as f64
                })
                .collect();
            let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let p: Vec<f64> = scores.iter().map(|x| (x - top).exp()).collect();
            let total: f64 = p.iter().sum();
            for d in 0..hd {
                let acc: f64 = (0..s.len).map(|u| p[u] * v[base + u * hd + d] as f64).sum();
                out[(r * s.heads + h) * hd + d] = (acc / total) as f32;
            }
        }
    }
    out
}

fn check_attention<K: DecodeBackend>(s: Shape) {
    let device = Default::default();
    let cache = [s.rows, s.kv_heads, s.max_len, s.head_dim];
    let q = Tensor::<K, 3>::random(
        [s.rows, s.heads, s.head_dim],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let k = Tensor::<K, 4>::random(cache, Distribution::Normal(0.0, 1.0), &device);
    let v = Tensor::<K, 4>::random(cache, Distribution::Normal(0.0, 1.0), &device);
    let bias_values = bias(&s);
    let bias_t = Tensor::<K, 2>::from_data(
        TensorData::new(bias_values.clone(), [s.rows, s.len]),
        &device,
    );
    let scale = 1.0 / (s.head_dim as f64).sqrt();
    let got = values(decode_attention(
        q.clone(),
        k.clone(),
        v.clone(),
        bias_t,
        scale as f32,
    ));
    let want = reference(&s, &values(q), &values(k), &values(v), &bias_values, scale);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "heads {}/{} head_dim {} len {}: out[{i}] = {g}, expected {w}",
            s.heads,
            s.kv_heads,
            s.head_dim,
            s.len
        );
    }
}

fn attention_cases<K: DecodeBackend>() {
    // Group 2, several 64-slot chunks, the last one partial.
    check_attention::<K>(Shape {
        rows: 3,
        heads: 4,
        kv_heads: 2,
        max_len: 200,
        len: 160,
        head_dim: 64,
    });
    // Head dim 80: 128 units, 48 of them idle in the output pass; group 7 (Qwen2.5-0.5B).
    check_attention::<K>(Shape {
        rows: 3,
        heads: 14,
        kv_heads: 2,
        max_len: 300,
        len: 256,
        head_dim: 80,
    });
    // Small and the largest head dims, no grouping, fewer slots than units.
    check_attention::<K>(Shape {
        rows: 2,
        heads: 2,
        kv_heads: 2,
        max_len: 40,
        len: 33,
        head_dim: 16,
    });
    check_attention::<K>(Shape {
        rows: 3,
        heads: 3,
        kv_heads: 1,
        max_len: 140,
        len: 130,
        head_dim: 128,
    });
    // Enough rows × kv heads (≥ 64) for the grouped kernel (one cube per kv head): group 7
    // at head dim 80 (32-slot chunks, the last partial), group 16 at head dim 128 (16-slot
    // chunks), and no grouping.
    for (rows, heads, kv_heads, len, head_dim) in [
        (32, 14, 2, 150, 80),
        (64, 16, 1, 41, 128),
        (64, 2, 2, 70, 64),
    ] {
        assert!(
            lm_kernels::decode::grouped_launch(rows, kv_heads, heads / kv_heads, head_dim)
                .is_some()
                || std::env::var_os("LM_DECODE_GROUPED").is_some()
        );
        check_attention::<K>(Shape {
            rows,
            heads,
            kv_heads,
            max_len: len + 9,
            len,
            head_dim,
        });
    }
}

fn check_qkv<K: DecodeBackend>(with_bias: bool) {
    let device = Default::default();
    let (rows, heads, kv_heads, max_len, hd) = (3, 4, 2, 12, 16);
    let width = (heads + 2 * kv_heads) * hd;
    let normal = Distribution::Normal(0.0, 1.0);
    let cache = [rows, kv_heads, max_len, hd];
    let k = Tensor::<K, 4>::random(cache, normal, &device);
    let v = Tensor::<K, 4>::random(cache, normal, &device);
    let qkv = Tensor::<K, 2>::random([rows, width], normal, &device);
    let bias = with_bias.then(|| Tensor::<K, 1>::random([width], normal, &device));
    let cos = Tensor::<K, 2>::random([rows, hd], normal, &device);
    let sin = Tensor::<K, 2>::random([rows, hd], normal, &device);
    // Half-split pairs: feature d rotates with d ± hd/2.
    let partner: Vec<i64> = (0..hd).map(|d| ((d + hd / 2) % hd) as i64).collect();
    // Row 1 is full: its slot (max_len) writes nothing.
    let slots = [4i64, max_len as i64, 0];
    let int = |v: Vec<i64>| {
        Tensor::<K, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
    };
    let (before_k, before_v) = (values(k.clone()), values(v.clone()));
    let (x, c, s_) = (
        values(qkv.clone()),
        values(cos.clone()),
        values(sin.clone()),
    );
    let b = bias.clone().map(values).unwrap_or(vec![0.0; width]);
    let inputs = QkvInputs {
        qkv,
        bias,
        cos,
        sin_signed: sin,
        partner: int(partner.clone()),
        slots: int(slots.to_vec()),
        heads,
    };
    let (q, k, v) = decode_qkv(inputs, k, v);

    let (mut want_q, mut want_k, mut want_v) = (vec![0f32; rows * heads * hd], before_k, before_v);
    for r in 0..rows {
        for head in 0..heads + 2 * kv_heads {
            for d in 0..hd {
                let at = |j: usize| x[r * width + head * hd + j] + b[head * hd + j];
                let mut y = at(d);
                if head < heads + kv_heads {
                    y = y * c[r * hd + d] + at(partner[d] as usize) * s_[r * hd + d];
                }
                if head < heads {
                    want_q[(r * heads + head) * hd + d] = y;
                } else if (slots[r] as usize) < max_len {
                    let kv_head = (head - heads) % kv_heads;
                    let at = ((r * kv_heads + kv_head) * max_len + slots[r] as usize) * hd + d;
                    if head < heads + kv_heads {
                        want_k[at] = y;
                    } else {
                        want_v[at] = y;
                    }
                }
            }
        }
    }
    for (what, got, want) in [
        ("q", values(q), want_q),
        ("k", values(k), want_k),
        ("v", values(v), want_v),
    ] {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}] = {g}, expected {w} (bias {with_bias})"
            );
        }
    }
}

#[test]
fn attention_matches_reference_unfused() {
    attention_cases::<Unfused>();
}

#[test]
fn attention_matches_reference_through_fusion() {
    attention_cases::<Wgpu<f32, i32>>();
}

#[test]
fn qkv_rotates_and_writes_each_rows_slot_only() {
    for with_bias in [true, false] {
        check_qkv::<Unfused>(with_bias);
        check_qkv::<Wgpu<f32, i32>>(with_bias);
    }
}

fn check_silu_mul<K: DecodeBackend>() {
    let device = Default::default();
    let gate = Tensor::<K, 2>::random([5, 300], Distribution::Normal(0.0, 4.0), &device);
    let up = Tensor::<K, 2>::random([5, 300], Distribution::Normal(0.0, 1.0), &device);
    let (g, u) = (values(gate.clone()), values(up.clone()));
    let out = Tensor::<K, 2>::from_primitive(TensorPrimitive::Float(K::silu_mul(
        gate.into_primitive().tensor(),
        up.into_primitive().tensor(),
    )));
    for (i, (got, (g, u))) in values(out).iter().zip(g.iter().zip(&u)).enumerate() {
        let want = (*g as f64 / (1.0 + (-*g as f64).exp()) * *u as f64) as f32;
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "out[{i}] = {got}, expected {want}"
        );
    }
}

#[test]
fn silu_mul_matches_the_formula() {
    check_silu_mul::<Unfused>();
    check_silu_mul::<Wgpu<f32, i32>>();
    // And generic code reaches it on wgpu.
    let device = Default::default();
    let ones = || Tensor::<Wgpu<f32, i32>, 1>::ones([4], &device);
    let Ok(out) = lm_kernels::decode::try_silu_mul(ones(), ones()) else {
        panic!("wgpu builds dispatch silu_mul to the kernel");
    };
    let silu_one = 1.0 / (1.0 + (-1.0f32).exp());
    assert!(values(out).iter().all(|v| (v - silu_one).abs() < 1e-6));
}

/// `[rows, dim]` with dim 300: more columns than a cube's 256 units, not a multiple of them.
fn check_add_rms_norm<K: DecodeBackend>() {
    let (rows, dim, eps) = (3, 300, 1e-6f32);
    let device = Default::default();
    let x = Tensor::<K, 2>::random([rows, dim], Distribution::Normal(0.0, 2.0), &device);
    let delta = Tensor::<K, 2>::random([rows, dim], Distribution::Normal(0.5, 1.0), &device);
    let weight = Tensor::<K, 1>::random([dim], Distribution::Normal(1.0, 0.3), &device);
    let (xs, ds, ws) = (
        values(x.clone()),
        values(delta.clone()),
        values(weight.clone()),
    );
    let [sum, y] = K::add_rms_norm(
        x.into_primitive().tensor(),
        delta.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        eps,
    )
    .map(|t| values(Tensor::<K, 2>::from_primitive(TensorPrimitive::Float(t))));
    for r in 0..rows {
        let row = r * dim..(r + 1) * dim;
        let s: Vec<f64> = (row.clone()).map(|i| (xs[i] + ds[i]) as f64).collect();
        let inv = 1.0 / (s.iter().map(|v| v * v).sum::<f64>() / dim as f64 + eps as f64).sqrt();
        for (c, i) in row.enumerate() {
            assert_eq!(sum[i], xs[i] + ds[i], "sum[{r}, {c}]");
            let want = s[c] * inv * ws[c] as f64;
            assert!(
                (y[i] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "y[{r}, {c}] = {}, expected {want}",
                y[i]
            );
        }
    }
}

#[test]
fn add_rms_norm_matches_the_formula() {
    check_add_rms_norm::<Unfused>();
    check_add_rms_norm::<Wgpu<f32, i32>>();
    // Generic code reaches it on wgpu, through any leading dims.
    let device = Default::default();
    let ones = || Tensor::<Wgpu<f32, i32>, 3>::ones([2, 1, 8], &device);
    let weight = Tensor::<Wgpu<f32, i32>, 1>::full([8], 3.0, &device);
    let Ok((sum, y)) = lm_kernels::decode::try_add_rms_norm(ones(), ones(), weight, 0.0) else {
        panic!("wgpu builds dispatch add_rms_norm to the kernel");
    };
    assert_eq!(sum.dims(), [2, 1, 8]);
    assert!(values(sum).iter().all(|&v| v == 2.0));
    // 2 / √(mean(2²)) · 3 = 3.
    assert!(values(y).iter().all(|v| (v - 3.0).abs() < 1e-6));
}
