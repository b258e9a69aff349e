//! Ports of the course's `tests/test_metrics.py` (same assertions) plus edge cases of the
//! parsers: ambiguity, word boundaries, thousands commas, negatives, decimals.

use lm_align::parse::{MmluExample, parse_gsm8k_response, parse_mmlu_response};

fn example() -> MmluExample {
    MmluExample {
        subject: "virology".into(),
        question: "How many human polyomaviruses are known at present?".into(),
        options: vec!["100".into(), "1".into(), "10".into(), "unknown".into()],
        answer: "A".into(),
    }
}

#[test]
fn test_parse_mmlu_response() {
    let out = "The correct answer is B. There is only one human polyomavirus known at present, \
               which is the BK virus.";
    assert_eq!(parse_mmlu_response(&example(), out).as_deref(), Some("B"));
}

#[test]
fn test_parse_mmlu_response_unknown() {
    let out = "The correct answer is 10000 polymerases.";
    assert_eq!(parse_mmlu_response(&example(), out), None);
}

#[test]
fn mmlu_forms_and_ambiguity() {
    let ex = example();
    assert_eq!(
        parse_mmlu_response(&ex, "the answer is (D)").as_deref(),
        Some("D")
    );
    assert_eq!(
        parse_mmlu_response(&ex, "Answer is: **C**").as_deref(),
        Some("C")
    );
    // "A" starting a word is not an option letter.
    assert_eq!(
        parse_mmlu_response(&ex, "The answer is Actually unclear."),
        None
    );
    // Two different letters: ambiguous.
    assert_eq!(
        parse_mmlu_response(&ex, "The answer is A. No, the answer is B."),
        None
    );
    // Same letter twice is fine.
    assert_eq!(
        parse_mmlu_response(&ex, "The answer is A. Again, the answer is A.").as_deref(),
        Some("A")
    );
    // Option text instead of a letter.
    assert_eq!(
        parse_mmlu_response(&ex, "The correct answer is unknown.").as_deref(),
        Some("D")
    );
    assert_eq!(parse_mmlu_response(&ex, "I have no idea."), None);
}

#[test]
fn test_parse_gsm8k_response() {
    let out = "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in \
               April and May.";
    assert_eq!(parse_gsm8k_response(out).as_deref(), Some("72"));
}

#[test]
fn test_parse_gsm8k_response_unknown() {
    let out = "Natalia sold twenty-four clips in May.\nThus, Natalia sold seventy-two clips \
               altogether in April and May.";
    assert_eq!(parse_gsm8k_response(out), None);
}

#[test]
fn gsm8k_number_forms() {
    assert_eq!(
        parse_gsm8k_response("It costs $1,234,567.").as_deref(),
        Some("1234567")
    );
    assert_eq!(
        parse_gsm8k_response("so 3.75 dollars.").as_deref(),
        Some("3.75")
    );
    assert_eq!(
        parse_gsm8k_response("The change is -12 degrees").as_deref(),
        Some("-12")
    );
    // A binary minus is not a sign.
    assert_eq!(parse_gsm8k_response("10-4").as_deref(), Some("4"));
    // "1, 2" is a list, not a thousands group; "1,23" neither.
    assert_eq!(parse_gsm8k_response("1, 2").as_deref(), Some("2"));
    assert_eq!(parse_gsm8k_response("1,23").as_deref(), Some("23"));
    assert_eq!(parse_gsm8k_response("#### 18").as_deref(), Some("18"));
}

/// GSM8K test reference solutions: the parser reads the final `#### N` (thousands commas
/// removed), and the grader accepts it against N as written.
#[test]
fn gsm8k_reference_solutions_parse() {
    let path = std::env::var_os("LM_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
        })
        .join("cs336/a5/data/gsm8k/test.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let solution = v["answer"].as_str().unwrap();
        let truth = solution.rsplit("#### ").next().unwrap().trim();
        let parsed = parse_gsm8k_response(solution).unwrap();
        assert_eq!(parsed, truth.replace(',', ""), "{solution}");
        assert!(
            lm_align::grader::grade(&parsed, truth),
            "{parsed} vs {truth}"
        );
        n += 1;
    }
    assert_eq!(n, 1319);
}
