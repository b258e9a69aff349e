//! The engine on the mock model: scheduling, reproducibility, stops, log-probs, errors.

use super::*;

fn req(id: u64, prompt: &[u32], params: SamplingParams) -> Request {
    Request::new(id, prompt.to_vec(), params)
}

fn sampled(seed: Option<u64>, max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_k: Some(20),
        top_p: 0.9,
        max_tokens,
        seed,
        ..SamplingParams::default()
    }
}

fn by_id(mut c: Vec<Completion>) -> Vec<Completion> {
    c.sort_by_key(|c| c.id);
    c
}

#[test]
fn greedy_follows_the_model() {
    let m = Mock::new(10, Logits::Next);
    let (out, _) = run(
        &m,
        4,
        32,
        None,
        vec![req(1, &[3, 8], SamplingParams::greedy(5))],
    );
    assert_eq!(out[0].tokens, vec![9, 0, 1, 2, 3]);
    assert_eq!((out[0].id, out[0].prompt_len), (1, 2));
    assert_eq!(out[0].finish, FinishReason::Length);
    assert_eq!(out[0].text, "", "no detokenizer, no text");
}

#[test]
fn one_batched_prefill_and_one_decode_per_step() {
    let m = Mock::new(10, Logits::Next);
    let max_tokens = [2usize, 5, 3, 7, 1];
    let requests = (0..5)
        .map(|i| req(i as u64, &[i as u32], SamplingParams::greedy(max_tokens[i])))
        .collect();
    let (out, _) = run(&m, 5, 32, None, requests);
    let mut expect = vec![Call::Prefill((0..5).collect())];
    for step in 1..7 {
        expect.push(Call::Decode(
            (0..5).filter(|&r| max_tokens[r] > step).collect(),
        ));
    }
    assert_eq!(m.calls(), expect);
    let lens: Vec<usize> = out.iter().map(|c| c.tokens.len()).collect();
    assert_eq!(lens, max_tokens);
}

#[test]
fn a_finished_row_is_refilled_at_the_next_step() {
    let m = Mock::new(10, Logits::Next);
    let requests = [1usize, 3, 2]
        .iter()
        .enumerate()
        .map(|(i, &n)| req(i as u64, &[i as u32], SamplingParams::greedy(n)))
        .collect();
    let (out, _) = run(&m, 2, 32, None, requests);
    let expect = [
        Call::Prefill(vec![0, 1]),
        Call::Decode(vec![1]),
        Call::Prefill(vec![0]),
        Call::Decode(vec![0, 1]),
    ];
    assert_eq!(m.calls(), expect);
    assert_eq!(
        out[2].tokens,
        vec![3, 4],
        "request 2 ran in the freed row 0"
    );
}

fn mixed_requests() -> Vec<Request> {
    let max_tokens = [3usize, 9, 1, 6, 4];
    (0..5u64)
        .map(|i| {
            let prompt: Vec<u32> = (0..=i as u32).map(|t| (t * 7 + 3) % 50).collect();
            let n = max_tokens[i as usize];
            let params = match i % 3 {
                0 => SamplingParams::greedy(n),
                1 => sampled(Some(100 + i), n),
                _ => sampled(None, n),
            };
            Request::new(i, prompt, params)
        })
        .collect()
}

#[test]
fn continuous_batching_equals_running_each_request_alone() {
    let m = Mock::new(50, Logits::Hash);
    let (batched, _) = run(&m, 2, 40, None, mixed_requests());
    let calls = m.calls();
    for r in mixed_requests() {
        let alone = Mock::new(50, Logits::Hash);
        let (out, _) = run(&alone, 1, 40, None, vec![r.clone()]);
        assert_eq!(batched[r.id as usize], out[0], "request {}", r.id);
    }
    // Batching really happened: prefills of at most 2 rows covering all 5 prompts, and
    // fewer decode calls than decoded tokens.
    let prefilled: Vec<usize> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Prefill(r) => Some(r.len()),
            Call::Decode(_) => None,
        })
        .collect();
    assert_eq!(prefilled[0], 2);
    assert_eq!(prefilled.iter().sum::<usize>(), 5);
    let decodes: Vec<&Vec<usize>> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Decode(r) => Some(r),
            Call::Prefill(_) => None,
        })
        .collect();
    let decoded: usize = decodes.iter().map(|r| r.len()).sum();
    let expected: usize = batched.iter().map(|c| c.tokens.len() - 1).sum();
    assert_eq!(decoded, expected);
    assert!(
        decodes.len() < decoded,
        "{} decode calls for {decoded} tokens",
        decodes.len()
    );
}

#[test]
fn seeded_sampling_is_reproducible_and_independent_of_the_batch() {
    let m = Mock::new(50, Logits::Hash);
    let requests = mixed_requests();
    let (a, _) = run(&m, 3, 40, None, requests.clone());
    let (again, _) = run(&m, 3, 40, None, requests.clone());
    assert_eq!(a, again);
    // Reversed order, a smaller batch and two extra companions.
    let mut other: Vec<Request> = requests.iter().rev().cloned().collect();
    other.insert(2, req(77, &[5, 5], sampled(None, 8)));
    other.push(req(78, &[9], sampled(Some(1), 2)));
    let (b, _) = run(&m, 2, 40, None, other);
    let b: Vec<Completion> = by_id(b).into_iter().filter(|c| c.id < 77).collect();
    assert_eq!(a, b);
    // The sampled requests really sampled: their tokens differ from greedy.
    let greedy: Vec<Request> = requests
        .iter()
        .map(|r| req(r.id, &r.prompt, SamplingParams::greedy(r.params.max_tokens)))
        .collect();
    let (g, _) = run(&m, 3, 40, None, greedy);
    assert!(a.iter().zip(&g).any(|(a, g)| a.tokens != g.tokens));
}

#[test]
fn the_engine_seed_moves_only_unseeded_requests() {
    let m = Mock::new(50, Logits::Hash);
    let requests = vec![
        req(0, &[1], sampled(None, 12)),
        req(1, &[1], sampled(Some(9), 12)),
    ];
    let with_seed = |seed| {
        let mut e = Engine::new(&m, 2, 40).expect("engine").with_seed(seed);
        e.generate(requests.clone(), |_| {}).expect("generate")
    };
    let (s0, s1) = (with_seed(0), with_seed(1));
    assert_ne!(s0[0].tokens, s1[0].tokens);
    assert_eq!(s0[1].tokens, s1[1].tokens);
}

#[test]
fn top_k_one_equals_greedy() {
    let m = Mock::new(50, Logits::Hash);
    let hot = SamplingParams {
        temperature: 1.7,
        top_k: Some(1),
        ..sampled(Some(3), 10)
    };
    let (a, _) = run(&m, 2, 40, None, vec![req(0, &[4, 2], hot)]);
    let (g, _) = run(
        &m,
        2,
        40,
        None,
        vec![req(0, &[4, 2], SamplingParams::greedy(10))],
    );
    assert_eq!(a[0].tokens, g[0].tokens);
}

#[test]
fn top_p_keeps_exactly_the_nucleus() {
    let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    let m = Mock::new(4, Logits::Fixed(logits));
    let params = |s| SamplingParams {
        top_p: 0.8,
        max_tokens: 60,
        seed: Some(s),
        ..Default::default()
    };
    let requests = (0..10).map(|s| req(s, &[0], params(s))).collect();
    let (out, _) = run(&m, 4, 64, None, requests);
    let tokens: Vec<u32> = out.iter().flat_map(|c| c.tokens.clone()).collect();
    assert_eq!(tokens.len(), 600);
    assert!(
        tokens.iter().all(|&t| t < 2),
        "drew a token outside the nucleus"
    );
    // Renormalised nucleus: P(0) = .5 / .8; 600 draws give a standard error of ~.02.
    let share = tokens.iter().filter(|&&t| t == 0).count() as f64 / 600.0;
    assert!((share - 0.625).abs() < 0.08, "share of token 0: {share}");
}

#[test]
fn stop_token_is_kept_in_tokens_but_not_in_text() {
    let m = Mock::new(10, Logits::Next);
    let params = SamplingParams {
        stop_token_ids: vec![6],
        ..SamplingParams::greedy(10)
    };
    let (out, events) = run(&m, 2, 32, Some(&spaced), vec![req(0, &[3], params)]);
    assert_eq!(out[0].tokens, vec![4, 5, 6]);
    assert_eq!(out[0].finish, FinishReason::StopToken(6));
    assert_eq!(out[0].text, "4 5 ");
    let streamed: String = events.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(streamed, out[0].text);
}

#[test]
fn stop_string_cuts_the_text_and_keeps_the_completing_token() {
    let m = Mock::new(20, Logits::Next);
    let stop = SamplingParams {
        stop: vec!["never".into(), "6 7".into()],
        ..SamplingParams::greedy(10)
    };
    let free = SamplingParams {
        stop: vec!["never".into()],
        ..SamplingParams::greedy(4)
    };
    let requests = vec![req(0, &[3], stop), req(1, &[11], free)];
    let (out, events) = run(&m, 2, 32, Some(&spaced), requests);
    // Token 7 decodes to "7 ", completing "6 7"; the text stops before "6".
    assert_eq!(out[0].tokens, vec![4, 5, 6, 7]);
    assert_eq!(out[0].finish, FinishReason::StopString("6 7".into()));
    assert_eq!(out[0].text, "4 5 ");
    assert_eq!(out[1].text, "12 13 14 15 ");
    assert_eq!(out[1].finish, FinishReason::Length);
    for c in &out {
        let streamed: String = events
            .iter()
            .filter(|e| e.0 == c.id)
            .map(|e| e.2.as_str())
            .collect();
        assert_eq!(streamed, c.text, "request {}", c.id);
    }
}

#[test]
fn context_full_when_prompt_and_tokens_reach_max_len() {
    let m = Mock::new(10, Logits::Next);
    let long = SamplingParams::greedy(100);
    let exact = SamplingParams::greedy(6);
    let (out, _) = run(
        &m,
        2,
        10,
        None,
        vec![req(0, &[1, 2, 3, 4], long), req(1, &[1, 2, 3, 4], exact)],
    );
    assert_eq!(out[0].tokens, vec![5, 6, 7, 8, 9, 0]);
    assert_eq!(out[0].finish, FinishReason::ContextFull);
    assert_eq!(
        out[1].finish,
        FinishReason::Length,
        "max_tokens is checked first"
    );
}

/// `log_softmax` of the mock's logits, independently of the engine.
fn reference_logprob(logits: &[f32], t: u32) -> f64 {
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let lse = m + logits
        .iter()
        .map(|&x| (x as f64 - m).exp())
        .sum::<f64>()
        .ln();
    logits[t as usize] as f64 - lse
}

#[test]
fn logprobs_are_the_raw_log_softmax_of_each_sampled_token() {
    let m = Mock::new(50, Logits::Hash);
    let params = SamplingParams {
        logprobs: true,
        temperature: 0.6,
        top_k: Some(5),
        ..sampled(Some(4), 12)
    };
    let prompt = [7u32, 1];
    let mut events = Vec::new();
    let mut engine = Engine::new(&m, 2, 40).expect("engine");
    let out = engine
        .generate(vec![req(0, &prompt, params)], |e| {
            if let Event::Token { logprob, .. } = e {
                events.push(logprob);
            }
        })
        .expect("generate");
    let c = &out[0];
    let lps = c.logprobs.as_ref().expect("logprobs requested");
    assert_eq!(lps.len(), c.tokens.len());
    let mut history = prompt.to_vec();
    for (i, (&t, &lp)) in c.tokens.iter().zip(lps).enumerate() {
        let want = reference_logprob(&Logits::Hash.of(&history, 50), t);
        assert!((lp as f64 - want).abs() < 1e-5, "token {i}: {lp} vs {want}");
        assert_eq!(events[i], Some(lp));
        history.push(t);
    }
    let (plain, _) = run(&m, 2, 40, None, vec![req(0, &prompt, sampled(Some(4), 3))]);
    assert_eq!(plain[0].logprobs, None);
}

/// Tokens are byte pieces of "hél€!": "é" and "€" each span two tokens.
fn byte_pieces(ids: &[u32]) -> String {
    let bytes: Vec<u8> = "hél€!".bytes().collect();
    let pieces: [&[u8]; 6] = [
        &bytes[0..1],
        &bytes[1..2],
        &bytes[2..3],
        &bytes[3..4],
        &bytes[4..6],
        &bytes[6..],
    ];
    let out: Vec<u8> = ids
        .iter()
        .flat_map(|&i| pieces[i as usize % 6].to_vec())
        .collect();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn streamed_text_never_splits_a_character_or_leaks_a_stop_string() {
    let m = Mock::new(6, Logits::Next);
    let stop = SamplingParams {
        stop: vec!["l€".into()],
        ..SamplingParams::greedy(6)
    };
    let requests = vec![req(0, &[5], stop), req(1, &[5], SamplingParams::greedy(6))];
    let (out, events) = run(&m, 2, 32, Some(&byte_pieces), requests);
    assert_eq!(out[0].tokens, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(out[0].text, "hé");
    assert_eq!(out[1].text, "hél€!");
    for c in &out {
        let pieces: Vec<&str> = events
            .iter()
            .filter(|e| e.0 == c.id)
            .map(|e| e.2.as_str())
            .collect();
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat(), c.text);
    }
}
