//! Tests of the random-weights generation benchmark (plumbing, table, exact token counts).

use super::*;

#[test]
fn hf_config_round_trips_to_the_same_decoder_config() {
    for preset in [Preset::Tiny, Preset::Qwen25_05b] {
        let c = preset.config();
        let back = DecoderConfig::from_hf_json(&hf_config(&c).unwrap()).unwrap();
        assert_eq!(back, c, "{preset:?}");
    }
}

#[test]
fn qwen_preset_matches_the_real_gguf_when_present() {
    let Some(path) =
        lm_core::assets::asset("models/gguf/Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf")
    else {
        eprintln!("skipped: no Qwen GGUF in the assets");
        return;
    };
    let file = lm_core::pretrained::gguf::GgufFile::open(&path).unwrap();
    let real = lm_core::pretrained::gguf_model::config_from_gguf(&file).unwrap();
    let preset = Preset::Qwen25_05b.config();
    assert!((real.rms_norm_eps - preset.rms_norm_eps).abs() < 1e-12); // stored as f32
    // The GGUF carries its own output matrix; Hugging Face's config.json ties it (the
    // same matmul either way).
    let real = DecoderConfig {
        rms_norm_eps: preset.rms_norm_eps,
        tie_word_embeddings: preset.tie_word_embeddings,
        ..real
    };
    assert_eq!(preset, real);
}

#[test]
fn prompt_ids_are_seeded_prefix_stable_and_in_vocab() {
    let a = prompt_ids(4, 8, 50, 7);
    assert_eq!(a, prompt_ids(4, 8, 50, 7));
    assert_ne!(a, prompt_ids(4, 8, 50, 8));
    assert_eq!(a[..2], prompt_ids(2, 8, 50, 7)[..]);
    assert!(a.iter().all(|p| p.len() == 8 && p.iter().all(|&t| t < 50)));
    let distinct: std::collections::HashSet<_> = a.iter().flatten().collect();
    assert!(distinct.len() > 10, "ids look constant: {a:?}");
}

#[test]
fn table_shows_rates_ratios_oom_and_missing_peers() {
    let o = RandomBenchOptions {
        preset: Preset::Tiny,
        backend: BackendKind::Ndarray,
        batches: vec![1, 2],
        prompt_len: 4,
        new_tokens: 2,
        warmup_tokens: 1,
        step_timing_tokens: 0,
        seed: 0,
        dtypes: vec!["float32".into(), "bfloat16".into()],
        python: "python3".into(),
        script: "x.py".into(),
        skip_peer: false,
        work_dir: "unused".into(),
    };
    let ours = [
        OursRow {
            batch: 1,
            seconds: Some(1.0),
            prefill_s: Some(0.25),
            tokens_per_s: Some(300.0),
            step_ms: Some(lm_core::generate::StepMillis {
                steps: 31,
                enqueue_ms: 2.5,
                wait_ms: 0.125,
                sample_ms: 0.5,
            }),
            error: None,
        },
        failed(2, "panic: CUDA out of memory".into()),
    ];
    let peer = [
        json!({"batch": 1, "dtype": "float32", "tokens_per_s": 100.0}),
        json!({"batch": 1, "dtype": "bfloat16", "error": "OOM"}),
        json!({"batch": 2, "dtype": "float32", "tokens_per_s": 50.0}),
    ];
    let text = table(&o, &ours, &peer);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| 1") || l.starts_with("| 2"))
        .collect();
    assert_eq!(rows[0], "| 1 | 300.0 | 0.250 | 100.0 | OOM | 3.00× | n/a |");
    assert_eq!(rows[1], "| 2 | OOM | n/a | 50.0 | n/a | n/a | n/a |");
    assert!(
        text.starts_with("tiny random weights, ours on ndarray"),
        "{text}"
    );
    // The step split, for the batches that have one (not the failed batch 2).
    let timed: Vec<&str> = text.lines().filter(|l| l.starts_with("- batch")).collect();
    assert_eq!(
        timed,
        [
            "- batch 1: 2.50 ms launching, 0.12 ms waiting for the device, 0.50 ms sampling a decode step (mean of 31)"
        ]
    );
}

#[test]
fn engine_generates_exactly_new_tokens_per_row_on_tiny() {
    type B = lm_core::backends::NdArray;
    let c = Preset::Tiny.config();
    let model = Decoder::<B>::random(c.clone(), 0, &Default::default()).unwrap();
    let prompts = prompt_ids(3, 5, c.vocab_size, 1);
    let runs = Runs {
        new_tokens: 6,
        warmup: 2,
        step_timing: 4,
    };
    let m = measure(&model, &prompts, runs).unwrap();
    assert!(m.seconds > 0.0 && m.prefill_s > 0.0 && m.prefill_s <= m.seconds);
    // The timed run decodes 3 steps after its prefill token; every part took some time.
    let steps = m.step_ms.expect("step timing was asked for");
    assert_eq!(steps.steps, 3);
    assert!(steps.enqueue_ms > 0.0 && steps.wait_ms >= 0.0 && steps.sample_ms > 0.0);
}
