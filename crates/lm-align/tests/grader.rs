//! The math reward grader: format and answer cases, LaTeX normalisation, numeric equality,
//! and agreement on MATH-500 (each problem's `answer` against the `\boxed{}` of its own
//! `solution`, which often writes the same value differently; and against a different
//! problem's answer, which must not match).

use std::path::PathBuf;

use lm_align::grader::{evaluate, grade, last_boxed, normalize_answer, r1_zero_reward};

#[test]
fn format_and_answer_rewards() {
    let ok = r1_zero_reward("2+2 is 4 </think> <answer>4</answer>", "4");
    assert_eq!(
        (ok.format_reward, ok.answer_reward, ok.reward),
        (1.0, 1.0, 1.0)
    );
    let wrong = r1_zero_reward("hmm </think> <answer>5</answer>", "4");
    assert_eq!(
        (wrong.format_reward, wrong.answer_reward, wrong.reward),
        (1.0, 0.0, 0.0)
    );
    // No `</think> <answer>`: no reward even for a right answer.
    let unformatted = r1_zero_reward("the answer is \\boxed{4}", "4");
    assert_eq!((unformatted.format_reward, unformatted.reward), (0.0, 0.0));
    let no_close = r1_zero_reward("x </think> <answer>4", "4");
    assert_eq!(no_close.format_reward, 0.0);
    // A boxed answer inside the tag wins over the surrounding text.
    let boxed = r1_zero_reward(
        "x </think> <answer>So it is \\boxed{\\frac{1}{2}}.</answer>",
        "0.5",
    );
    assert_eq!(boxed.reward, 1.0);
    // An unclosed box inside the tag: formatted, but no answer.
    let broken = r1_zero_reward("x </think> <answer>\\boxed{12</answer>", "12");
    assert_eq!((broken.format_reward, broken.answer_reward), (1.0, 0.0));
    // Ground truth given as a full solution.
    assert_eq!(
        r1_zero_reward("</think> <answer>7</answer>", "so $\\boxed{7}$.").reward,
        1.0
    );
    assert_eq!(
        r1_zero_reward("</think> <answer></answer>", "").answer_reward,
        0.0
    );
}

#[test]
fn boxed_extraction() {
    assert_eq!(
        last_boxed("a \\boxed{1} b \\boxed{\\frac{2}{3}} c").as_deref(),
        Some("\\frac{2}{3}")
    );
    assert_eq!(last_boxed("\\fbox{x^{2}}").as_deref(), Some("x^{2}"));
    assert_eq!(last_boxed("so \\boxed 5$.").as_deref(), Some("5"));
    assert_eq!(last_boxed("\\boxed{unclosed"), None);
    assert_eq!(last_boxed("nothing"), None);
}

#[test]
fn normalisation() {
    assert_eq!(
        normalize_answer("\\left( 3, \\dfrac{\\pi}{2} \\right)"),
        "(3,\\frac{\\pi}{2})"
    );
    assert_eq!(normalize_answer("90^\\circ"), "90");
    assert_eq!(normalize_answer("10\\%"), "10");
    assert_eq!(normalize_answer("\\$1,000.50"), "1000.50");
    assert_eq!(normalize_answer("5 \\text{ cm}."), "5");
    assert_eq!(normalize_answer("\\text{Evelyn}"), "Evelyn");
    assert_eq!(normalize_answer("x = 3"), "3");
    assert_eq!(normalize_answer("\\frac12"), "\\frac{1}{2}");
    assert_eq!(normalize_answer("\\sqrt2"), "\\sqrt{2}");
    assert_eq!(normalize_answer("\\frac{1}2"), "\\frac{1}{2}");
    assert_eq!(
        normalize_answer("\\frac{\\frac12}{3}"),
        "\\frac{\\frac{1}{2}}{3}"
    );
    assert_eq!(normalize_answer("\\sqrt[3]{27}"), "\\sqrt[3]{27}");
    assert_eq!(normalize_answer(".5"), "0.5");
    assert_eq!(normalize_answer("\\text{(C)}"), "C");
    // A tuple is not a thousands number.
    assert_eq!(normalize_answer("(1,234)"), "(1,234)");
}

#[test]
fn numeric_equality() {
    assert_eq!(evaluate("\\frac{1}{2}"), Some(0.5));
    assert_eq!(
        evaluate("2\\sqrt{2}").map(|v| (v * 1e9).round()),
        Some((8f64.sqrt() * 1e9).round())
    );
    assert_eq!(evaluate("-3^2"), Some(-9.0));
    assert_eq!(evaluate("\\sqrt[3]{27}").map(f64::round), Some(3.0));
    assert_eq!(evaluate("x+1"), None);
    assert!(grade("0.5", "\\frac12"));
    assert!(grade("\\dfrac{3}{4}", "0.75"));
    assert!(grade("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"));
    assert!(grade("1000", "1,000"));
    assert!(grade("3", "\\sqrt[3]{27}"));
    assert!(grade("\\frac{1}6", "\\frac{\\frac12}{3}"));
    assert!(grade(
        "(3, \\frac{\\pi}{2})",
        "\\left( 3, \\frac{\\pi}{2} \\right)"
    ));
    assert!(grade("[0.5, 2)", "[\\frac12,2)"));
    assert!(!grade("[0.5, 2]", "[\\frac12,2)"));
    assert!(!grade("(1,2)", "(1,2,3)"));
    assert!(!grade("0.5", "0.51"));
    assert!(!grade("3", "-3"));
    assert!(!grade("", "0"));
    assert!(!grade("x", "y"));
}

#[test]
fn pathological_inputs_do_not_panic() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(evaluate(&deep), None);
    assert_eq!(evaluate(&"-".repeat(100_000)), None);
    assert!(!grade(&"{".repeat(10_000), "1"));
    for s in [
        "", "$", "\\boxed", "\\boxed{", "\\frac", "\\sqrt[", "((", "é,ü", "\\text{", "x=", "^",
        "1/0", "(é)",
    ] {
        let _ = grade(s, s);
        let _ = r1_zero_reward(&format!("</think> <answer>{s}</answer>"), s);
    }
    // Division by zero is not a number, so 1/0 and 2/0 are not "equal infinities".
    assert!(!grade("1/0", "2/0"));
}

fn math500() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("assets/math/MATH-500/test.jsonl")
}

#[test]
fn math500_agreement() {
    let path = math500();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let boxed = last_boxed(v["solution"].as_str().unwrap()).expect("solution has \\boxed");
            (boxed, v["answer"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(rows.len(), 500);
    let mut misses = Vec::new();
    for (boxed, answer) in &rows {
        let response = format!("reasoning </think> <answer>{boxed}</answer>");
        if r1_zero_reward(&response, answer).reward != 1.0 {
            misses.push((boxed.clone(), answer.clone()));
        }
    }
    let agree = 1.0 - misses.len() as f64 / rows.len() as f64;
    let differ = rows.iter().filter(|(b, a)| b.trim() != a.trim()).count();
    // The same values written as decimals (fractions, roots, π): numeric equality.
    let mut decimal = 0;
    let mut decimal_misses = Vec::new();
    for (_, answer) in &rows {
        if let Some(v) = evaluate(&normalize_answer(answer))
            && v.fract() != 0.0
        {
            decimal += 1;
            if !grade(&format!("{v:.9}"), answer) {
                decimal_misses.push(answer.clone());
            }
        }
    }
    eprintln!(
        "MATH-500: {differ} boxed answers differ from `answer` as text; decimal forms of \
         {decimal} non-integer answers, misses {decimal_misses:?}"
    );
    assert!(decimal >= 50 && decimal_misses.is_empty());
    // Equivalent LaTeX renditions of every answer: `$…$`, `\dfrac`, `\left(`/`\right)`,
    // extra spaces, a trailing period.
    let rewrite = |a: &str| {
        let a = a
            .replace("\\frac", "\\dfrac")
            .replace('(', "\\left( ")
            .replace(')', " \\right)");
        format!("$ {a} $.")
    };
    let rewritten_misses: Vec<_> = rows
        .iter()
        .map(|(_, a)| a)
        .filter(|a| !grade(&rewrite(a), a))
        .collect();
    eprintln!(
        "MATH-500: rewritten renditions missed {}: {rewritten_misses:?}",
        rewritten_misses.len()
    );
    assert!(rewritten_misses.is_empty());
    // Wrong answers: each problem's boxed answer against the next problem's answer, where the
    // two differ even after normalisation.
    let mut pairs = 0;
    let mut false_matches = Vec::new();
    for (i, (boxed, _)) in rows.iter().enumerate() {
        let other = &rows[(i + 1) % rows.len()].1;
        if normalize_answer(boxed) == normalize_answer(other) {
            continue;
        }
        pairs += 1;
        if grade(boxed, other) {
            false_matches.push((boxed.clone(), other.clone()));
        }
    }
    eprintln!(
        "MATH-500: agreement {agree:.3} ({} misses: {:?}); false matches {}/{pairs}: {:?}",
        misses.len(),
        misses,
        false_matches.len(),
        false_matches
    );
    assert!(agree >= 0.97, "agreement {agree}");
    assert!(false_matches.len() <= 2, "{false_matches:?}");
}
