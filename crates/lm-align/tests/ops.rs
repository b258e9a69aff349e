//! Hand-computed checks of the lab-5 loss functions (f64 ndarray backend, with autodiff).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use lm_align::losses::{
    self, LossType, PolicyGradientInputs, compute_group_normalized_rewards, dpo_loss, masked_mean,
    masked_normalize,
};

type B = Autodiff<NdArray<f64>>;

fn dev() -> burn::tensor::Device<B> {
    Default::default()
}

fn t2(rows: &[&[f64]]) -> Tensor<B, 2> {
    let cols = rows[0].len();
    let v: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), cols]), &dev())
}

fn t1(v: &[f64]) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev())
}

fn mask2(rows: &[&[bool]]) -> Tensor<B, 2, Bool> {
    let cols = rows[0].len();
    let v: Vec<bool> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), cols]), &dev())
}

/// Values as f64 (gradients come back on the inner backend, hence generic).
fn vals<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

#[test]
fn entropy_of_known_distributions() {
    // [0, 0] is uniform over 2 → ln 2; [0, ln 3] is (1/4, 3/4); a peak of 1000 has entropy ~0.
    let logits = Tensor::<B, 3>::from_data([[[0.0, 0.0], [0.0, 3f64.ln()], [1000.0, 0.0]]], &dev());
    let h = vals(losses::compute_entropy::<B, 3, 2>(logits).unwrap());
    let quarter = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
    assert_close(&h, &[2f64.ln(), quarter, 0.0], 1e-12);
}

#[test]
fn entropy_rejects_a_wrong_output_rank() {
    let logits = Tensor::<B, 3>::zeros([1, 2, 3], &dev());
    assert!(losses::compute_entropy::<B, 3, 1>(logits).is_err());
}

#[test]
fn entropy_gradient_matches_finite_differences() {
    let base = [0.3, -1.2, 2.0, 0.7, -0.4, 1.1];
    let entropy_of = |v: &[f64]| -> f64 {
        let logits = Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [2, 3]), &dev());
        vals(losses::compute_entropy::<B, 2, 1>(logits).unwrap().sum())[0]
    };
    let logits =
        Tensor::<B, 2>::from_data(TensorData::new(base.to_vec(), [2, 3]), &dev()).require_grad();
    let h = losses::compute_entropy::<B, 2, 1>(logits.clone())
        .unwrap()
        .sum();
    let grad = vals(logits.grad(&h.backward()).unwrap());
    let eps = 1e-6;
    for i in 0..base.len() {
        let (mut up, mut down) = (base, base);
        up[i] += eps;
        down[i] -= eps;
        let numeric = (entropy_of(&up) - entropy_of(&down)) / (2.0 * eps);
        assert!(
            (grad[i] - numeric).abs() < 1e-7,
            "d/dl{i}: {} vs {numeric}",
            grad[i]
        );
    }
}

#[test]
fn entropy_gradient_of_peaked_rows_is_accurate_in_f32() {
    // Logits of spread ~30 around ~90: the log-probability of a peak must come from the
    // max-shifted logits, else its rounding at the scale of 90 (~4e-6) swamps the gradient.
    type F = Autodiff<NdArray<f32>>;
    let mut state = 12345u64;
    let logits: Vec<f64> = (0..3 * 64)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            90.0 + 60.0 * ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
        })
        .collect();
    let gradient = |lg: &[f64]| -> Vec<f64> {
        lg.chunks(64)
            .flat_map(|row| {
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
                let lp: Vec<f64> = row.iter().map(|x| x - m - z.ln()).collect();
                let mean: f64 = lp.iter().map(|l| l.exp() * l).sum();
                lp.iter().map(|l| -l.exp() * (l - mean)).collect::<Vec<_>>()
            })
            .collect()
    };
    let as_f32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
    let x = Tensor::<F, 2>::from_data(
        TensorData::new(as_f32.clone(), [3, 64]),
        &Default::default(),
    )
    .require_grad();
    let h = losses::compute_entropy::<F, 2, 1>(x.clone()).unwrap().sum();
    let got = vals(x.grad(&h.backward()).unwrap());
    let want = gradient(&as_f32.iter().map(|&v| v as f64).collect::<Vec<_>>());
    assert_close(&got, &want, 5e-7);
}

#[test]
fn log_probs_pick_the_label_column() {
    let logits = Tensor::<B, 3>::from_data([[[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 0.0]]], &dev());
    let labels = Tensor::<B, 2, Int>::from_data([[2, 0]], &dev());
    let lp = vals(losses::log_probs_from_logits(logits, labels).unwrap());
    let z = 1f64.exp() + 2f64.exp() + 3f64.exp() + 1.0;
    assert_close(&lp, &[-(4f64.ln()), 1.0 - z.ln()], 1e-12);
}

#[test]
fn log_probs_reject_out_of_vocab_labels_and_bad_shapes() {
    let logits = Tensor::<B, 3>::zeros([1, 2, 4], &dev());
    let too_big = Tensor::<B, 2, Int>::from_data([[0, 4]], &dev());
    let err = losses::log_probs_from_logits(logits.clone(), too_big).unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
    let negative = Tensor::<B, 2, Int>::from_data([[-1, 0]], &dev());
    assert!(losses::log_probs_from_logits(logits.clone(), negative).is_err());
    let wrong_shape = Tensor::<B, 2, Int>::from_data([[0, 1, 2]], &dev());
    assert!(losses::log_probs_from_logits(logits, wrong_shape).is_err());
}

#[test]
fn masked_normalize_sums_selected_elements() {
    let x = t2(&[&[1.0, 2.0], &[3.0, 4.0]]);
    let m = mask2(&[&[true, false], &[true, true]]);
    let rows = masked_normalize(x.clone(), m.clone(), Some(1), 2.0).unwrap();
    assert_eq!(rows.dims(), [2, 1]);
    assert_close(&vals(rows), &[0.5, 3.5], 1e-12);
    let cols = masked_normalize(x.clone(), m.clone(), Some(0), 2.0).unwrap();
    assert_close(&vals(cols), &[2.0, 2.0], 1e-12);
    let all = masked_normalize(x, m, None, 2.0).unwrap();
    assert_close(&vals(all), &[4.0], 1e-12);
}

#[test]
fn masked_mean_averages_selected_elements_and_gives_nan_for_none() {
    let x = t2(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0]]);
    let m = mask2(&[&[true, false], &[true, true], &[false, false]]);
    let rows = vals(masked_mean(x.clone(), m.clone(), Some(1)).unwrap());
    assert_close(&rows[..2], &[1.0, 3.5], 1e-12);
    assert!(rows[2].is_nan(), "an empty mask row is 0/0: {rows:?}");
    let all = vals(masked_mean(x.clone(), m.clone(), None).unwrap());
    assert_close(&all, &[8.0 / 3.0], 1e-12);
    let bad_mask = mask2(&[&[true, false]]);
    assert!(masked_mean(x.clone(), bad_mask, Some(1)).is_err());
    assert!(masked_mean(x, m, Some(2)).is_err());
}

#[test]
fn sft_step_scales_the_masked_log_likelihood() {
    let plp = t2(&[&[-1.0, -2.0], &[-3.0, -4.0]]).require_grad();
    let m = mask2(&[&[true, false], &[true, true]]);
    // −(−1 − 3 − 4) / (normalize_constant 1 · B 2 · accumulation 2) = 2.
    let loss = losses::sft_microbatch_train_step(plp.clone(), m, 2, 1.0).unwrap();
    assert_close(&vals(loss.clone()), &[2.0], 1e-12);
    let g = vals(plp.grad(&loss.backward()).unwrap());
    assert_close(&g, &[-0.25, 0.0, -0.25, -0.25], 1e-12);
}

#[test]
fn group_normalized_rewards_per_group() {
    let r = t1(&[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0]);
    let out = compute_group_normalized_rewards(r.clone(), 4, 1e-6, true).unwrap();
    // Group 2: mean 1.5, unbiased std sqrt(5/3). Group 1 has std 0 → advantages 0.
    let s = (5.0f64 / 3.0).sqrt() + 1e-6;
    let want = [0.0, 0.0, 0.0, 0.0, -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s];
    assert_close(&vals(out.advantages), &want, 1e-12);
    assert_close(&vals(out.raw_rewards), &vals(r.clone()), 0.0);
    assert!((out.stats.mean - 10.0 / 8.0).abs() < 1e-12);
    assert_eq!((out.stats.max, out.stats.min), (3.0, 0.0));
    let raw_var = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0]
        .iter()
        .map(|x: &f64| (x - 10.0 / 8.0).powi(2))
        .sum::<f64>()
        / 7.0;
    assert!((out.stats.std - raw_var.sqrt()).abs() < 1e-12);

    let centred = compute_group_normalized_rewards(r.clone(), 4, 1e-6, false).unwrap();
    let want = [0.0, 0.0, 0.0, 0.0, -1.5, -0.5, 0.5, 1.5];
    assert_close(&vals(centred.advantages), &want, 1e-12);

    assert!(compute_group_normalized_rewards(r.clone(), 3, 1e-6, true).is_err());
    assert!(compute_group_normalized_rewards(r, 0, 1e-6, true).is_err());
}

#[test]
fn naive_policy_gradient_broadcasts_over_tokens() {
    let a = t2(&[&[2.0], &[-1.0]]);
    let plp = t2(&[&[-1.0, -2.0], &[-3.0, -4.0]]);
    let loss = losses::compute_naive_policy_gradient_loss(a, plp.clone()).unwrap();
    assert_close(&vals(loss), &[2.0, 4.0, -3.0, -4.0], 1e-12);
    assert!(losses::compute_naive_policy_gradient_loss(t2(&[&[1.0, 2.0]]), plp).is_err());
}

#[test]
fn grpo_clip_loss_clips_and_counts() {
    // Ratios 1.5, 1.1 with A = 1 and 0.5, 1.5 with A = −1; cliprange 0.2.
    let a = t2(&[&[1.0], &[-1.0]]);
    let old = t2(&[&[0.0, 0.0], &[0.0, 0.0]]);
    let plp = t2(&[&[1.5f64.ln(), 1.1f64.ln()], &[0.5f64.ln(), 1.5f64.ln()]]).require_grad();
    let (loss, stats) = losses::compute_grpo_clip_loss(a, plp.clone(), old, 0.2).unwrap();
    // 1.5·1 → clipped to 1.2; 1.1 stays; −0.5 vs −0.8 → −0.8 (clipped); −1.5 vs −1.2 → −1.5.
    assert_close(&vals(loss.clone()), &[-1.2, -1.1, 0.8, 1.5], 1e-12);
    let clipped: Vec<bool> = stats.clipped.into_data().to_vec().unwrap();
    assert_eq!(clipped, [true, false, true, false]);
    assert_close(&vals(stats.clip_fraction), &[0.5], 1e-12);
    // d(−ratio·A)/d log π = −ratio·A where unclipped, 0 where clipped.
    let g = vals(plp.grad(&loss.sum().backward()).unwrap());
    assert_close(&g, &[0.0, -1.1, 0.0, 1.5], 1e-12);
}

#[test]
fn grpo_clip_ratio_exactly_at_the_bound_is_not_clipped() {
    let a = t2(&[&[1.0]]);
    let plp = t2(&[&[1.25f64.ln()]]);
    let (_, stats) = losses::compute_grpo_clip_loss(a, plp, t2(&[&[0.0]]), 0.25).unwrap();
    let clipped: Vec<bool> = stats.clipped.into_data().to_vec().unwrap();
    assert_eq!(clipped, [false]);
}

fn all_inputs() -> PolicyGradientInputs<B> {
    PolicyGradientInputs {
        raw_rewards: Some(t2(&[&[1.0], &[2.0]])),
        advantages: Some(t2(&[&[0.5], &[-0.5]])),
        old_log_probs: Some(t2(&[&[-1.0, -2.0], &[-3.0, -4.0]])),
        cliprange: Some(0.2),
    }
}

#[test]
fn policy_gradient_dispatch_uses_each_types_input() {
    let plp = t2(&[&[-1.0, -2.0], &[-3.0, -4.0]]);
    let no_base =
        losses::compute_policy_gradient_loss(plp.clone(), LossType::NoBaseline, all_inputs())
            .unwrap();
    assert_close(&vals(no_base.loss), &[1.0, 2.0, 6.0, 8.0], 1e-12);
    assert!(no_base.clip.is_none());
    let baseline = losses::compute_policy_gradient_loss(
        plp.clone(),
        LossType::ReinforceWithBaseline,
        all_inputs(),
    )
    .unwrap();
    assert_close(&vals(baseline.loss), &[0.5, 1.0, -1.5, -2.0], 1e-12);
    // plp == old_log_probs: ratio 1 everywhere, loss −A, nothing clipped.
    let clip = losses::compute_policy_gradient_loss(plp, LossType::GrpoClip, all_inputs()).unwrap();
    assert_close(&vals(clip.loss), &[-0.5, -0.5, 0.5, 0.5], 1e-12);
    assert_close(&vals(clip.clip.unwrap().clip_fraction), &[0.0], 0.0);
}

#[test]
fn policy_gradient_names_a_missing_input() {
    let plp = t2(&[&[-1.0, -2.0], &[-3.0, -4.0]]);
    let cases = [
        (LossType::NoBaseline, "raw_rewards"),
        (LossType::ReinforceWithBaseline, "advantages"),
        (LossType::GrpoClip, "old_log_probs"),
    ];
    for (loss_type, field) in cases {
        let mut inputs = all_inputs();
        match field {
            "raw_rewards" => inputs.raw_rewards = None,
            "advantages" => inputs.advantages = None,
            _ => inputs.old_log_probs = None,
        }
        let err = losses::compute_policy_gradient_loss(plp.clone(), loss_type, inputs)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(field) && err.contains(loss_type.as_str()),
            "{err}"
        );
    }
}

#[test]
fn loss_type_parses_the_course_names() {
    for t in [
        LossType::NoBaseline,
        LossType::ReinforceWithBaseline,
        LossType::GrpoClip,
    ] {
        assert_eq!(t.as_str().parse::<LossType>().unwrap(), t);
    }
    let err = "ppo".parse::<LossType>().unwrap_err().to_string();
    assert!(err.contains("ppo"), "{err}");
}

#[test]
fn grpo_step_averages_over_response_tokens() {
    let plp = t2(&[&[-1.0, -2.0], &[-3.0, -4.0]]).require_grad();
    let m = mask2(&[&[true, false], &[true, true]]);
    // Per-token −r·log π = [[1, 2], [6, 8]]; masked row means 1 and 7; batch mean 4; / 2.
    let (loss, _) =
        losses::grpo_microbatch_train_step(plp.clone(), m, 2, LossType::NoBaseline, all_inputs())
            .unwrap();
    assert_close(&vals(loss.clone()), &[2.0], 1e-12);
    // d/d log π = −r · mask / (row count · B · accumulation).
    let g = vals(plp.grad(&loss.backward()).unwrap());
    assert_close(&g, &[-0.25, 0.0, -0.25, -0.25], 1e-12);
}

#[test]
fn dpo_loss_at_zero_margin_and_its_gradient() {
    let chosen = t1(&[-3.0]).require_grad();
    let rejected = t1(&[-5.0]).require_grad();
    // z = 0.1 · ((−3 − −3) − (−5 − −5)) = 0 → ln 2; ∂/∂chosen = −β·σ(−z) = −0.05.
    let loss = dpo_loss(
        chosen.clone(),
        rejected.clone(),
        t1(&[-3.0]),
        t1(&[-5.0]),
        0.1,
    )
    .unwrap();
    assert_close(&vals(loss.clone()), &[2f64.ln()], 1e-12);
    let grads = loss.backward();
    assert_close(&vals(chosen.grad(&grads).unwrap()), &[-0.05], 1e-12);
    assert_close(&vals(rejected.grad(&grads).unwrap()), &[0.05], 1e-12);
}

#[test]
fn dpo_loss_is_finite_for_large_margins() {
    // z = ±250 (beta 1): softplus(−250) ≈ e^−250, softplus(250) = 250.
    let chosen = t1(&[250.0, -250.0, 1.0]).require_grad();
    let rejected = t1(&[0.0, 0.0, 0.0]).require_grad();
    let zeros = || t1(&[0.0, 0.0, 0.0]);
    let loss = dpo_loss(chosen.clone(), rejected.clone(), zeros(), zeros(), 1.0).unwrap();
    let l = vals(loss.clone());
    assert!(l[0] >= 0.0 && l[0] < 1e-100, "{l:?}");
    assert_close(&l[1..], &[250.0, (1.0 + (-1f64).exp()).ln()], 1e-12);
    let g = vals(chosen.grad(&loss.sum().backward()).unwrap());
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert_close(&g, &[-sig(-250.0), -sig(250.0), -sig(-1.0)], 1e-12);
    assert!(g.iter().all(|x| x.is_finite()));
}

#[test]
fn dpo_loss_checks_shapes() {
    let err = dpo_loss(t1(&[0.0]), t1(&[0.0, 1.0]), t1(&[0.0]), t1(&[0.0]), 0.1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy_rejected_logps"), "{err}");
}
