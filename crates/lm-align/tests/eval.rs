//! Rollouts and evaluation over a scripted fake model (exact text, ids and scores), plus the
//! dataset readers on the course's files (skipped with a note when absent) and bad inputs.

mod eval_fake;

use std::path::{Path, PathBuf};

use eval_fake::{ANSWER_NL, Chars, EOS, Fake, ids};
use lm_align::eval::{
    Dataset, DatasetFormat, EvalExample, PromptTemplate, Scorer, evaluate, read_dataset,
    read_gsm8k, read_math, read_mmlu,
};
use lm_align::rollout::{Rollout, RolloutOptions, sample_rollouts};
use lm_core::generate::{FinishReason, SamplingParams};
fn opts(rows: usize, seed: u64) -> RolloutOptions {
    RolloutOptions {
        max_batch_rows: rows,
        max_len: 256,
        seed,
    }
}

fn with_eos(text: &str) -> Vec<u32> {
    let mut v = ids(text);
    v.push(EOS);
    v
}

#[test]
fn stop_string_is_reappended_and_response_ids_are_what_was_generated() {
    let mut multi = ids("hm</think> <answer>7");
    multi.push(ANSWER_NL);
    multi.extend(ids("more"));
    let scripts = vec![
        (ids("P0:"), multi.clone()),
        (ids("P1:"), ids("x</think> <answer>3</answer>tail")),
        (ids("P2:"), with_eos("abc")),
        (ids("P3:"), vec![EOS]),
        (ids("P4:"), ids("abcdefghijklmnop")),
    ];
    let prompts: Vec<Vec<u32>> = scripts.iter().map(|(p, _)| p.clone()).collect();
    let params = SamplingParams {
        stop: vec!["</answer>".into()],
        logprobs: true,
        ..SamplingParams::greedy(40)
    };
    let short = SamplingParams {
        max_tokens: 5,
        ..params.clone()
    };
    let model = Fake::Script(scripts);
    let mut out = sample_rollouts(&model, &Chars, &prompts[..4], 1, &params, &opts(2, 0)).unwrap();
    out.extend(sample_rollouts(&model, &Chars, &prompts[4..], 1, &short, &opts(2, 0)).unwrap());
    let stop = FinishReason::StopString("</answer>".into());

    // The multi-character token completes the stop string: kept whole in the ids.
    assert_eq!(out[0].text, "hm</think> <answer>7</answer>");
    assert_eq!(out[0].response_ids, multi[..multi.len() - 4]);
    assert_eq!(out[0].finish, stop);
    // Character tokens: ids end at the `>` completing the stop string.
    assert_eq!(out[1].text, "x</think> <answer>3</answer>");
    assert_eq!(out[1].response_ids, ids("x</think> <answer>3</answer>"));
    assert_eq!(out[1].finish, stop);
    // The codec's EOS ends generation, stays in the ids, not in the text.
    assert_eq!(out[2].text, "abc");
    assert_eq!(out[2].response_ids, with_eos("abc"));
    assert_eq!(out[2].finish, FinishReason::StopToken(EOS));
    // An immediate EOS is a valid, empty response.
    assert_eq!(out[3].text, "");
    assert_eq!(out[3].response_ids, vec![EOS]);
    assert_eq!(out[4].text, "abcde");
    assert_eq!(out[4].finish, FinishReason::Length);
    for r in &out {
        let lps = r.logprobs.as_ref().expect("logprobs requested");
        assert_eq!(lps.len(), r.response_ids.len());
        // The scripted token has logit 12 against 129 zeros: log p ≈ -129·e^-12.
        assert!(lps.iter().all(|&l| l <= 0.0 && l > -0.01), "{lps:?}");
    }
}

fn sample(prompts: &[Vec<u32>], rows: usize, seed: u64) -> Vec<Rollout> {
    let params = SamplingParams {
        temperature: 1.0,
        max_tokens: 10,
        logprobs: true,
        ..SamplingParams::default()
    };
    sample_rollouts(&Fake::Noise, &Chars, prompts, 4, &params, &opts(rows, seed)).unwrap()
}

#[test]
fn samples_are_grouped_and_independent_of_batching_and_other_prompts() {
    let prompts = vec![ids("a"), ids("longer prompt"), ids("mid one")];
    let base = sample(&prompts, 1, 7);
    let order: Vec<(usize, usize)> = base
        .iter()
        .map(|r| (r.prompt_index, r.sample_index))
        .collect();
    let expected: Vec<(usize, usize)> = (0..3).flat_map(|p| (0..4).map(move |s| (p, s))).collect();
    assert_eq!(order, expected);
    for r in &base {
        assert_eq!(r.prompt_ids, prompts[r.prompt_index]);
        assert_eq!(
            r.logprobs.as_ref().map(Vec::len),
            Some(r.response_ids.len())
        );
    }
    for rows in [3, 5, 12] {
        assert_eq!(sample(&prompts, rows, 7), base, "max_batch_rows {rows}");
    }
    // Dropping the last prompt leaves the others' samples unchanged.
    assert_eq!(sample(&prompts[..2], 4, 7), base[..8]);
    // Samples of one group differ from each other, and another seed draws other samples.
    let group: Vec<&Vec<u32>> = base[..4].iter().map(|r| &r.response_ids).collect();
    assert!(group.windows(2).any(|w| w[0] != w[1]), "{group:?}");
    assert_ne!(sample(&prompts, 4, 8), base);
}

#[test]
fn bad_rollout_inputs_are_errors_naming_the_prompt() {
    let params = SamplingParams::greedy(4);
    let long = vec![1u32; 256];
    let err = sample_rollouts(
        &Fake::Noise,
        &Chars,
        &[ids("a"), long],
        1,
        &params,
        &opts(2, 0),
    )
    .unwrap_err();
    assert!(err.to_string().contains("prompts[1]"), "{err}");
    let err =
        sample_rollouts(&Fake::Noise, &Chars, &[ids("a")], 0, &params, &opts(2, 0)).unwrap_err();
    assert!(err.to_string().contains("samples_per_prompt"), "{err}");
}

fn shared_dir() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lm-align-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn course_gsm8k_and_mmlu_files_read() {
    let gsm = shared_dir().join("cs336/a5/data/gsm8k/test.jsonl");
    let mmlu = shared_dir().join("cs336/a5/data/mmlu/test");
    if !gsm.is_file() || !mmlu.is_dir() {
        eprintln!("skipped: {} or {} absent", gsm.display(), mmlu.display());
        return;
    }
    let lines = std::fs::read_to_string(&gsm).unwrap().lines().count();
    let set = read_dataset(&gsm).unwrap();
    assert_eq!((set.examples.len(), set.scorer), (lines, Scorer::R1Zero));
    assert!(set.examples[0].question.starts_with("Janet"));
    assert_eq!(set.examples[0].ground_truth, "18");
    for e in &set.examples {
        assert!(e.ground_truth.parse::<f64>().is_ok(), "{e:?}");
    }
    let set = read_dataset(&mmlu).unwrap();
    assert_eq!(set.scorer, Scorer::MmluLetter);
    let files = std::fs::read_dir(&mmlu).unwrap().count();
    assert!(set.examples.len() > files * 50, "{}", set.examples.len());
    for e in &set.examples {
        assert!(["A", "B", "C", "D"].contains(&e.ground_truth.as_str()));
        assert_eq!(e.options.len(), 4);
        assert!(
            e.question
                .contains(&format!("\nD. {}\nAnswer:", e.options[3]))
        );
    }
    let first = &set.examples[0];
    assert!(first.id.starts_with("abstract_algebra:"));
    assert!(first.question.contains("question about abstract algebra."));
}

#[test]
fn math_500_answers_come_from_the_answer_field() {
    let Some(path) = lm_core::assets::asset("math/MATH-500/test.jsonl") else {
        eprintln!("skipped: $LM_ASSETS/math/MATH-500/test.jsonl absent");
        return;
    };
    assert_eq!(DatasetFormat::detect(&path).unwrap(), DatasetFormat::Math);
    let examples = read_math(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(examples.len(), text.lines().count());
    for (e, line) in examples.iter().zip(text.lines()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e.ground_truth, v["answer"].as_str().unwrap());
        assert_eq!(e.id, v["unique_id"].as_str().unwrap());
    }
}

#[test]
fn inline_files_parse_and_bad_ones_name_file_and_line() {
    let dir = temp_dir("readers");
    let gsm = write(
        &dir,
        "g.jsonl",
        "{\"question\": \"q1\", \"answer\": \"so\\n#### 1,234\"}\n\n{\"question\": \"q2\", \"answer\": \"#### -5\", \"idx\": 9}\n",
    );
    let ex = read_gsm8k(&gsm).unwrap();
    assert_eq!(
        (ex[0].id.as_str(), ex[0].ground_truth.as_str()),
        ("0", "1234")
    );
    assert_eq!(
        (ex[1].id.as_str(), ex[1].ground_truth.as_str()),
        ("9", "-5")
    );

    let math = write(
        &dir,
        "m.jsonl",
        r#"{"problem": "p", "solution": "$\\boxed{1}$ then $\\boxed{\\frac{1}{2}}$."}"#,
    );
    let ex = read_math(&math).unwrap();
    assert_eq!(
        (ex[0].question.as_str(), ex[0].ground_truth.as_str()),
        ("p", "\\frac{1}{2}")
    );

    let csv = write(
        &dir,
        "high_school_physics_test.csv",
        "\"What, \"\"exactly\"\"\nis it?\",1,2,3,4,C\nok,a,b,c,d,A\n\nshort,a,b,c,D\n",
    );
    let err = read_mmlu(&csv).unwrap_err().to_string();
    assert!(
        err.contains("high_school_physics_test.csv: line 5:"),
        "{err}"
    );
    assert!(err.contains("expected 6 fields, got 5"), "{err}");
    let good = write(
        &dir,
        "x_test.csv",
        "\"What, \"\"exactly\"\"\nis it?\",1,2,3,4,C\n",
    );
    let ex = read_mmlu(&good).unwrap();
    assert_eq!(ex[0].options, ["1", "2", "3", "4"]);
    assert!(
        ex[0]
            .question
            .contains("Question: What, \"exactly\"\nis it?\nA. 1\n")
    );

    let cases = [
        (
            "bad1.jsonl",
            "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{oops\n",
            "line 2: invalid JSON",
        ),
        (
            "bad2.jsonl",
            "\n{\"question\": \"q\", \"answer\": \"no final\"}\n",
            "line 2: `answer` has no",
        ),
        (
            "bad3.jsonl",
            "{\"question\": 3, \"answer\": \"#### 1\"}\n",
            "line 1: `question` is not a string",
        ),
        (
            "bad4.csv",
            "a,b,c,d,e,E\n",
            "line 1: answer \"E\" is not A-D",
        ),
        (
            "bad5.csv",
            "ok,a,b,c,d,A\n\"open,a,b,c,d,A\n",
            "line 2: unterminated",
        ),
    ];
    for (name, text, want) in cases {
        let path = write(&dir, name, text);
        let err = read_dataset(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
    let err = read_math(&write(
        &dir,
        "bad6.jsonl",
        "{\"problem\": \"p\", \"solution\": \"none\"}",
    ));
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("bad6.jsonl: line 1: no `answer`")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prompt_templates_need_a_question_slot() {
    assert!(PromptTemplate::new("no slot").is_err());
    let t = PromptTemplate::new("Q: {question}\nA:").unwrap();
    assert_eq!(t.render("1+1? {question}"), "Q: 1+1? {question}\nA:");
    let r1 = shared_dir().join("cs336/a5/prompts/r1_zero.prompt");
    if !r1.is_file() {
        eprintln!("skipped r1_zero: {} absent", r1.display());
        return;
    }
    let r1 = PromptTemplate::r1_zero(&shared_dir()).unwrap();
    let text = r1.render("What is 2+2?");
    assert!(text.contains("User: What is 2+2?\n") && text.ends_with("Assistant: <think>"));
    let err = PromptTemplate::from_file(&shared_dir().join("cs336/a5/prompts/alpaca_sft.prompt"));
    assert!(err.unwrap_err().to_string().contains("alpaca_sft.prompt"));
}

fn example(id: &str, question: &str, truth: &str) -> EvalExample {
    EvalExample {
        id: id.into(),
        question: question.into(),
        ground_truth: truth.into(),
        options: Vec::new(),
    }
}

#[test]
fn evaluate_scores_each_response_and_writes_the_report() {
    let template = PromptTemplate::new("Q: {question}\nA: <think>").unwrap();
    let dataset = Dataset {
        examples: vec![
            example("a", "ducks?", "18"),
            example("b", "robes?", "3"),
            example("c", "cats?", "4"),
            example("d", "big?", "1234"),
        ],
        scorer: Scorer::R1Zero,
    };
    let responses = [
        ids("eggs</think> <answer>18</answer> extra"),
        ids("</think> <answer>5</answer>"),
        with_eos("just 4"),
        ids("sum</think> <answer>\\boxed{1,234}</answer>"),
    ];
    let scripts = dataset
        .examples
        .iter()
        .zip(&responses)
        .map(|(e, r)| (ids(&template.render(&e.question)), r.clone()))
        .collect();
    let params = SamplingParams {
        stop: vec!["</answer>".into()],
        ..SamplingParams::greedy(64)
    };
    let report = evaluate(
        &Fake::Script(scripts),
        &Chars,
        &dataset,
        &template,
        &params,
        &opts(3, 1),
    )
    .unwrap();
    let got: Vec<(f64, f64)> = report
        .records
        .iter()
        .map(|r| (r.format_reward, r.answer_reward))
        .collect();
    assert_eq!(got, [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (1.0, 1.0)]);
    assert_eq!(report.n, 4);
    assert_eq!(report.accuracy, 0.5);
    assert_eq!(report.format_rate, 0.75);
    // Through `</answer>`, and "just 4" plus its EOS.
    let tokens = "eggs</think> <answer>18</answer>".len() + responses[1].len() + 7 + 42;
    assert_eq!(report.mean_response_tokens, tokens as f64 / 4.0);
    assert_eq!(
        report.records[0].response,
        "eggs</think> <answer>18</answer>"
    );
    assert_eq!(report.records[0].prompt, "Q: ducks?\nA: <think>");
    assert_eq!(
        report.records[2].finish_reason,
        FinishReason::StopToken(EOS)
    );

    let dir = temp_dir("report").join("out");
    report.write(&dir).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["records.jsonl", "summary.json"],
        "no temp files left"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids_written: Vec<&str> = lines.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids_written, ["a", "b", "c", "d"]);
    assert_eq!(lines[1]["answer_reward"], 0.0);
    assert_eq!(lines[0]["finish_reason"]["reason"], "stop_string");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (summary["n"].as_u64(), summary["accuracy"].as_f64()),
        (Some(4), Some(0.5))
    );
    assert_eq!(summary["format_rate"].as_f64(), Some(0.75));
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn mmlu_scorer_reads_the_letter() {
    let e = EvalExample {
        options: vec!["red".into(), "green".into(), "blue".into(), "gray".into()],
        ..example("m", "colour?", "B")
    };
    let s = Scorer::MmluLetter;
    assert_eq!(s.score(&e, "The correct answer is B."), (1.0, 1.0));
    assert_eq!(s.score(&e, "The correct answer is C."), (1.0, 0.0));
    assert_eq!(s.score(&e, "The correct answer is green"), (1.0, 1.0));
    assert_eq!(s.score(&e, "no idea"), (0.0, 0.0));
}
