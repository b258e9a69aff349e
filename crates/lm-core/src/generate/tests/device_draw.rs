//! The device draw against its definition (the host sampler's inverse CDF) and the engine
//! with device sampling against the engine sampling on the host.

use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::generate::device_draw::{DrawInput, draw_on_device};

fn random_logits(rows: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * vocab)
        .map(|_| rng.random::<f32>() * 8.0 - 4.0)
        .collect()
}

fn tensor<B: Backend>(values: &[f32], rows: usize, vocab: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, vocab]),
        &Default::default(),
    )
}

/// The running weight before and after `token` (f64, the host sampler's arithmetic).
fn cdf_around(logits: &[f32], temperature: f32, token: usize) -> (f64, f64, f64) {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let w: Vec<f64> = logits
        .iter()
        .map(|&x| ((x as f64 - m) / temperature as f64).exp())
        .collect();
    let before: f64 = w[..token].iter().sum();
    (before, before + w[token], w.iter().sum())
}

fn check_inverse_cdf<B: Backend>() {
    // Vocabularies below, at and across the 512-token blocks (with a padded last block).
    for (vocab, rows) in [(7usize, 40usize), (512, 30), (3001, 60)] {
        let logits = random_logits(rows, vocab, vocab as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let inputs: Vec<DrawInput> = (0..rows)
            .map(|i| DrawInput {
                greedy: false,
                temperature: [1.0, 0.7, 1.6][i % 3],
                uniform: rng.random::<f64>(),
            })
            .collect();
        let draws = draw_on_device(tensor::<B>(&logits, rows, vocab), &inputs).expect("draw");
        for (i, (draw, input)) in draws.iter().zip(&inputs).enumerate() {
            let row = &logits[i * vocab..(i + 1) * vocab];
            let (token, logprob) = draw.expect("finite logits");
            let (before, after, total) = cdf_around(row, input.temperature, token as usize);
            let target = input.uniform * total;
            // f32 sums on the device: the target lies in the token's interval up to rounding.
            let slack = 1e-5 * total;
            assert!(
                before <= target + slack && target < after + slack,
                "vocab {vocab} row {i}: token {token} covers [{before}, {after}), target {target}"
            );
            let expected = log_softmax_at(row, token);
            assert!(
                (logprob - expected).abs() < 1e-4,
                "row {i}: {logprob} vs {expected}"
            );
        }
        let tokens: std::collections::HashSet<u32> =
            draws.iter().map(|d| d.expect("finite").0).collect();
        assert!(
            tokens.len() > rows.min(vocab) / 3,
            "vocab {vocab}: draws are not spread"
        );
    }
}

fn check_greedy_and_bad_rows<B: Backend>() {
    let vocab = 600;
    let mut logits = random_logits(7, vocab, 9);
    logits[vocab + 555] = 50.0; // row 1: a clear maximum past the first block
    logits[2 * vocab + 3] = f32::NAN; // row 2: a NaN counts as -inf
    logits[3 * vocab..4 * vocab].fill(f32::NEG_INFINITY); // row 3: no distribution
    logits[4 * vocab + 9] = f32::INFINITY; // row 4: no finite normaliser
    logits[5 * vocab..6 * vocab].fill(f32::NAN); // row 5: nothing but NaN
    logits[6 * vocab + 100] = 9.0; // row 6: a tie, broken to the first index
    logits[6 * vocab + 400] = 9.0;
    let inputs: Vec<DrawInput> = (0..7)
        .map(|i| DrawInput {
            greedy: i != 2,
            temperature: 1.0,
            uniform: 0.5,
        })
        .collect();
    let draws = draw_on_device(tensor::<B>(&logits, 7, vocab), &inputs).expect("draw");
    let row = |i: usize| &logits[i * vocab..(i + 1) * vocab];
    assert_eq!(draws[0].map(|d| d.0), argmax(row(0)));
    assert_eq!(draws[1].map(|d| d.0), Some(555));
    let (lp, expected) = (draws[1].expect("finite").1, log_softmax_at(row(1), 555));
    assert!((lp - expected).abs() < 1e-5, "{lp} vs {expected}");
    assert_ne!(
        draws[2].expect("finite").0,
        3,
        "the NaN token has no weight"
    );
    assert_eq!(draws[3], None);
    assert_eq!(draws[4], None);
    assert_eq!(draws[5], None);
    assert_eq!(draws[6].map(|d| d.0), Some(100));
}

#[test]
fn sampled_tokens_are_the_inverse_cdf_of_the_uniform() {
    check_inverse_cdf::<B>();
}

#[test]
fn greedy_rows_take_the_argmax_and_bad_rows_go_back_to_the_host() {
    check_greedy_and_bad_rows::<B>();
}

/// The same definitions through the draw kernel, on burn's wgpu backend (one fusion
/// operation) and on its unfused backend (the kernel launched directly).
#[cfg(feature = "wgpu")]
#[test]
fn the_draw_kernel_samples_and_takes_the_argmax_alike() {
    type Fused = crate::backends::Wgpu;
    type Unfused = lm_kernels::dispatch::WgpuUnfused;
    let d = Default::default();
    let kernel =
        crate::kernels::draw_rows::<Fused>(Tensor::zeros([1, 4], &d), Tensor::zeros([1, 2], &d));
    assert!(kernel.is_ok(), "wgpu builds draw with the kernel");
    check_inverse_cdf::<Fused>();
    check_greedy_and_bad_rows::<Fused>();
    check_inverse_cdf::<Unfused>();
    check_greedy_and_bad_rows::<Unfused>();
}

#[test]
fn device_and_host_sampling_give_the_same_completions() {
    let m = Mock::new(700, Logits::Hash);
    let requests: Vec<Request> = (0..6u64)
        .map(|id| {
            let params = SamplingParams {
                temperature: if id == 0 { 0.0 } else { 0.6 + 0.2 * id as f32 },
                max_tokens: 12,
                seed: (id % 2 == 0).then_some(id + 100),
                logprobs: true,
                ..SamplingParams::default()
            };
            Request::new(id, vec![id as u32 + 1, 3], params)
        })
        .collect();
    let generate = |device: bool| {
        let mut engine = Engine::new(&m, 4, 40)
            .expect("engine")
            .with_device_sampling(device);
        engine.generate(requests.clone(), |_| {}).expect("generate")
    };
    let (device, host) = (generate(true), generate(false));
    for (d, h) in device.iter().zip(&host) {
        assert_eq!(d.tokens, h.tokens, "request {}", d.id);
        let (dl, hl) = (
            d.logprobs.as_ref().expect("on"),
            h.logprobs.as_ref().expect("on"),
        );
        for (a, b) in dl.iter().zip(hl) {
            assert!((a - b).abs() < 1e-4, "request {}: {a} vs {b}", d.id);
        }
    }
    assert!(device.iter().any(|c| {
        c.tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 3
    }));
}
