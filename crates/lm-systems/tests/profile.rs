//! The profiling harness on the CPU backend, and its report.

use lm_core::backends::NdArrayAutodiff;
use lm_core::config::{AttentionKernel, Precision};
use lm_systems::profile::{ModelSize, ProfileCase, Timing, profile};
use lm_systems::report::{Row, csv, parse_baseline, table};

fn case(size: &str) -> ProfileCase {
    ProfileCase {
        size: size.into(),
        context: 16,
        batch: 2,
        vocab: 256,
        precision: Precision::F32,
        attention: AttentionKernel::Auto,
        warmup: 1,
        steps: 3,
        seed: 0,
    }
}

#[test]
fn timing_is_mean_and_sample_std_in_ms() {
    let t = Timing::of(&[0.001, 0.003]);
    assert!((t.mean_ms - 2.0).abs() < 1e-9);
    assert!((t.std_ms - 2f64.sqrt()).abs() < 1e-9);
    assert_eq!(Timing::of(&[0.5]).std_ms, 0.0);
}

#[test]
fn sizes_are_the_course_table_and_unknown_names_are_errors() {
    let xl = ModelSize::by_name("xl").unwrap();
    assert_eq!(
        (xl.d_model, xl.d_ff, xl.num_layers, xl.num_heads),
        (2560, 10240, 32, 32)
    );
    let medium = ModelSize::by_name("medium").unwrap();
    assert_eq!((medium.d_model, medium.num_layers), (1024, 24));
    let err = ModelSize::by_name("huge").unwrap_err().to_string();
    assert!(err.contains("huge") && err.contains("small"), "{err}");
}

#[test]
fn profile_times_every_phase_of_a_real_step() {
    let result = profile::<NdArrayAutodiff>(&case("tiny"), &Default::default()).unwrap();
    for t in [&result.forward, &result.backward, &result.optimizer] {
        assert!(t.mean_ms > 0.0 && t.std_ms >= 0.0, "{t:?}");
    }
    let sum = result.forward.mean_ms + result.backward.mean_ms + result.optimizer.mean_ms;
    assert!((result.step.mean_ms - sum).abs() < 1e-6 * sum.max(1.0));
    let expected_tps = 32.0 / (result.step.mean_ms / 1e3);
    assert!((result.tokens_per_s - expected_tps).abs() < 1e-6 * expected_tps);
    // The tiny size has 4 layers of 512: about 12.6M non-embedding + 2 × 131k embedding.
    assert!(
        (12_000_000..14_000_000).contains(&result.parameters),
        "{}",
        result.parameters
    );
    // Random tokens: after a few small steps the loss is finite and below ln(vocab) + 1.
    let (first, last) = (result.first_loss.unwrap(), result.last_loss.unwrap());
    assert!(last > 0.0 && last < 256f32.ln() + 1.0, "loss {last}");
    assert!((first - 256f32.ln()).abs() < 1.0, "first loss {first}");
    assert_eq!(
        result.memory_reserved, None,
        "the CPU backend reports no device memory"
    );
}

#[test]
fn bad_cases_are_errors_not_panics() {
    let mut bad = case("tiny");
    bad.steps = 0;
    assert!(profile::<NdArrayAutodiff>(&bad, &Default::default()).is_err());
    assert!(profile::<NdArrayAutodiff>(&case("nope"), &Default::default()).is_err());
}

#[test]
fn report_pairs_each_case_with_its_baseline_and_keeps_csv_columns() {
    let baseline = parse_baseline(
        "warning: something\n\
         {\"size\":\"tiny\",\"context\":16,\"precision\":\"f32\",\"status\":\"ok\",\
          \"forward\":{\"mean_ms\":1.0,\"std_ms\":0.1},\"backward\":{\"mean_ms\":2.0,\"std_ms\":0.1},\
          \"optimizer\":{\"mean_ms\":1.0,\"std_ms\":0.0},\"step\":{\"mean_ms\":4.0,\"std_ms\":0.2},\
          \"tokens_per_s\":8000.0,\"memory_reserved\":1073741824,\"impl\":\"pytorch\"}\n\
         {\"size\":\"xl\",\"context\":16,\"precision\":\"f32\",\"status\":\"OOM\",\"forward\":null,\
          \"backward\":null,\"optimizer\":null,\"step\":null,\"tokens_per_s\":null,\"memory_reserved\":null}\n",
    )
    .unwrap();
    assert_eq!(baseline.len(), 2);
    let ours = profile::<NdArrayAutodiff>(&case("tiny"), &Default::default()).unwrap();
    let step = ours.step.mean_ms;
    let rows = vec![
        Row::new(case("tiny"), Ok(ours), &baseline),
        Row::new(case("xl"), Err("OOM".into()), &baseline),
        Row::new(case("small"), Err("failed: boom, twice".into()), &baseline),
    ];
    assert!((rows[0].speedup().unwrap() - 4.0 / step).abs() < 1e-9);
    assert_eq!(rows[1].speedup(), None);
    assert!(rows[2].baseline.is_none());

    let text = table(&rows);
    assert!(text.contains("| xl | 16 | f32 | OOM |"), "{text}");
    assert!(text.contains("1.00"), "torch memory in GiB: {text}");

    let csv = csv(&rows);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    let columns = lines[0].split(',').count();
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), columns, "{line}");
    }
    assert!(
        lines[1].ends_with(&format!("{:.4}", 4.0 / step)),
        "{}",
        lines[1]
    );
}
