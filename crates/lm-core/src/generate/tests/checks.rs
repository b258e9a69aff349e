//! Output format and the errors raised before any model call.

use super::*;
use crate::error::LmError;

fn req(id: u64, prompt: &[u32], params: SamplingParams) -> Request {
    Request::new(id, prompt.to_vec(), params)
}

#[test]
fn completions_serialize_for_jsonl() {
    let m = Mock::new(10, Logits::Next);
    let params = SamplingParams {
        stop_token_ids: vec![5],
        ..SamplingParams::greedy(4)
    };
    let (out, _) = run(&m, 1, 32, Some(&spaced), vec![req(3, &[3], params)]);
    let json = serde_json::to_value(&out[0]).expect("serialize");
    assert_eq!(
        json["finish"],
        serde_json::json!({"reason": "stop_token", "value": 5})
    );
    assert_eq!(json["tokens"], serde_json::json!([4, 5]));
    assert!(json.get("logprobs").is_none());
}

fn error_field(m: &Mock, detok: Option<&dyn Detokenizer>, requests: Vec<Request>) -> String {
    let mut e = Engine::new(m, 2, 8).expect("engine");
    if let Some(d) = detok {
        e = e.with_detokenizer(d);
    }
    match e.generate(requests, |_| {}) {
        Err(LmError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_requests_are_rejected_before_any_model_call() {
    let m = Mock::new(10, Logits::Next);
    let ok = || req(1, &[1], SamplingParams::greedy(2));
    let cases: Vec<(Vec<Request>, &str)> = vec![
        (
            vec![ok(), req(7, &[1; 8], SamplingParams::greedy(2))],
            "request 7: prompt",
        ),
        (
            vec![
                ok(),
                req(
                    3,
                    &[1],
                    SamplingParams {
                        top_p: 0.0,
                        ..Default::default()
                    },
                ),
            ],
            "request 3: top_p",
        ),
        (
            vec![req(
                4,
                &[1],
                SamplingParams {
                    temperature: -1.0,
                    ..Default::default()
                },
            )],
            "request 4: temperature",
        ),
        (
            vec![req(2, &[], SamplingParams::greedy(2))],
            "request 2: prompt",
        ),
        (
            vec![req(2, &[1, 10], SamplingParams::greedy(2))],
            "request 2: prompt[1]",
        ),
        (vec![ok(), ok()], "requests"),
        (
            vec![req(
                5,
                &[1],
                SamplingParams {
                    stop: vec!["x".into()],
                    ..Default::default()
                },
            )],
            "request 5: stop",
        ),
    ];
    for (requests, field) in cases {
        assert_eq!(error_field(&m, None, requests), field);
    }
    assert!(m.calls().is_empty());
    let with_text = vec![req(
        5,
        &[1],
        SamplingParams {
            stop: vec!["x".into()],
            ..Default::default()
        },
    )];
    let mut e = Engine::new(&m, 2, 8)
        .expect("engine")
        .with_detokenizer(&spaced);
    assert!(e.generate(with_text, |_| {}).is_ok());
}

#[test]
fn engine_limits_are_checked() {
    let m = Mock::new(10, Logits::Next);
    for (rows, max_len, field) in [
        (0, 8, "max_batch_rows"),
        (2, 65, "max_len"),
        (2, 1, "max_len"),
    ] {
        match Engine::new(&m, rows, max_len) {
            Err(LmError::Config { field: f, .. }) => assert_eq!(f, field),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("rows {rows} max_len {max_len} accepted"),
        }
    }
}
