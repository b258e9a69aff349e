//! The toy task: the character codec, the problem generator (arithmetic, noise, seeds,
//! splits) and the r1_zero format the reward grades.

use std::collections::HashSet;
use std::path::PathBuf;

use lm_align::eval::PromptTemplate;
use lm_align::grader::r1_zero_reward;
use lm_align::policy::TextCodec;
use lm_align::toy::{
    ArithmeticSpec, CharCodec, Problem, R1_ZERO_COMPACT, format_response, generate_problems,
    pretraining_documents, split_problems,
};

const SEEDS: [u64; 4] = [0, 1, 7, 2024];

fn spec(noise: f64) -> ArithmeticSpec {
    ArithmeticSpec {
        noise,
        ..ArithmeticSpec::default()
    }
}

/// One worked equation "a op b = c." parsed back.
#[derive(Debug)]
struct Equation {
    lhs: u64,
    op: char,
    rhs: u64,
    result: u64,
}

impl Equation {
    fn is_right(&self) -> bool {
        let truth = match self.op {
            '+' => self.lhs.checked_add(self.rhs),
            '-' => self.lhs.checked_sub(self.rhs),
            '*' => self.lhs.checked_mul(self.rhs),
            other => panic!("unknown op {other:?}"),
        };
        truth == Some(self.result)
    }
}

fn parse_equations(reasoning: &str) -> Vec<Equation> {
    let words: Vec<&str> = reasoning.split(' ').collect();
    assert_eq!(words.len() % 5, 0, "{reasoning:?}");
    words
        .chunks(5)
        .map(|w| {
            assert_eq!(w[3], "=", "{reasoning:?}");
            let result = w[4].strip_suffix('.').expect("equation ends with '.'");
            Equation {
                lhs: w[0].parse().unwrap(),
                op: w[1].chars().next().unwrap(),
                rhs: w[2].parse().unwrap(),
                result: result.parse().unwrap(),
            }
        })
        .collect()
}

/// Each step starts from the previous step's written result, and the last result is the answer.
fn assert_chained(eqs: &[Equation], answer: &str, context: &Problem) {
    for pair in eqs.windows(2) {
        assert_eq!(pair[1].lhs, pair[0].result, "{context:?}");
    }
    assert_eq!(
        eqs.last().unwrap().result.to_string(),
        answer,
        "{context:?}"
    );
}

fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn every_worked_solution_is_right_and_matches_the_question() {
    let spec = ArithmeticSpec {
        max_operand: 50,
        ..spec(0.3)
    };
    let mut ops_seen = HashSet::new();
    for seed in SEEDS {
        for p in generate_problems(&spec, 500, seed).unwrap() {
            let eqs = parse_equations(&p.reasoning);
            assert!((1..=2).contains(&eqs.len()), "{p:?}");
            assert!(eqs.iter().all(Equation::is_right), "{p:?}");
            assert_chained(&eqs, &p.answer, &p);
            // The operands are the question's numbers, in order.
            let mut operands = vec![eqs[0].lhs];
            operands.extend(eqs.iter().map(|e| e.rhs));
            assert_eq!(numbers_in(&p.question), operands, "{p:?}");
            for e in &eqs {
                match e.op {
                    '*' => assert!((2..=12).contains(&e.rhs), "{p:?}"),
                    _ => assert!(e.rhs <= 50, "{p:?}"),
                }
            }
            assert!(eqs[0].lhs <= 50, "{p:?}");
            ops_seen.insert(eqs.iter().map(|e| e.op).collect::<String>());
        }
    }
    // Every one- and two-step combination of the templates shows up.
    let expected: HashSet<String> = ["+", "-", "*", "+-", "-+", "*+", "*-"]
        .map(String::from)
        .into();
    assert_eq!(ops_seen, expected);
}

#[test]
fn noisy_teacher_slips_once_and_carries_the_slip() {
    for seed in SEEDS {
        for p in generate_problems(&spec(0.5), 400, seed).unwrap() {
            let eqs = parse_equations(&p.teacher_reasoning);
            assert_chained(&eqs, &p.teacher_answer, &p);
            let wrong = eqs.iter().filter(|e| !e.is_right()).count();
            assert_eq!(p.correct, p.teacher_answer == p.answer, "{p:?}");
            if p.correct {
                assert_eq!((wrong, &p.teacher_reasoning), (0, &p.reasoning));
            } else {
                assert_eq!(wrong, 1, "{p:?}");
                let step = eqs.iter().position(|e| !e.is_right()).unwrap();
                let truth = parse_equations(&p.reasoning);
                let off = eqs[step].result.abs_diff(truth[step].result);
                assert!((1..=3).contains(&off), "slip of {off}: {p:?}");
            }
        }
    }
}

#[test]
fn noise_and_two_step_rates_are_roughly_honoured() {
    let problems = generate_problems(&spec(0.3), 2000, 11).unwrap();
    let wrong = problems.iter().filter(|p| !p.correct).count() as f64 / 2000.0;
    assert!((0.25..=0.35).contains(&wrong), "wrong fraction {wrong}");
    let two_step = problems
        .iter()
        .filter(|p| parse_equations(&p.reasoning).len() == 2)
        .count() as f64
        / 2000.0;
    assert!(
        (0.25..=0.35).contains(&two_step),
        "two-step fraction {two_step}"
    );

    let clean = generate_problems(&spec(0.0), 500, 11).unwrap();
    assert!(
        clean
            .iter()
            .all(|p| p.correct && p.teacher_reasoning == p.reasoning)
    );
    let all_noisy = generate_problems(&spec(1.0), 500, 11).unwrap();
    assert!(all_noisy.iter().all(|p| !p.correct));
}

#[test]
fn generation_is_deterministic_by_seed() {
    let a = generate_problems(&spec(0.3), 200, 5).unwrap();
    assert_eq!(a, generate_problems(&spec(0.3), 200, 5).unwrap());
    assert_ne!(a, generate_problems(&spec(0.3), 200, 6).unwrap());
    let distinct: HashSet<&str> = a.iter().map(|p| p.question.as_str()).collect();
    assert!(
        distinct.len() > 190,
        "only {} distinct questions",
        distinct.len()
    );
}

#[test]
fn bad_specs_are_config_errors() {
    for (bad, field) in [
        (spec(1.5), "noise"),
        (spec(f64::NAN), "noise"),
        (
            ArithmeticSpec {
                two_step_fraction: -0.1,
                ..spec(0.0)
            },
            "two_step_fraction",
        ),
        (
            ArithmeticSpec {
                max_operand: 1,
                ..spec(0.0)
            },
            "max_operand",
        ),
    ] {
        let err = generate_problems(&bad, 3, 0).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn spec_reads_from_config_with_defaults() {
    let empty: ArithmeticSpec = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, ArithmeticSpec::default());
    assert_eq!(
        (empty.max_operand, empty.two_step_fraction, empty.noise),
        (99, 0.3, 0.0)
    );
    let partial: ArithmeticSpec = serde_json::from_str(r#"{"noise": 0.2}"#).unwrap();
    assert_eq!(partial, spec(0.2));
    assert!(serde_json::from_str::<ArithmeticSpec>(r#"{"nosie": 0.2}"#).is_err());
}

#[test]
fn split_has_no_shared_or_repeated_questions() {
    // Tiny operands force many repeated questions.
    let spec = ArithmeticSpec {
        max_operand: 3,
        two_step_fraction: 0.0,
        noise: 0.0,
    };
    let problems = generate_problems(&spec, 3000, 3).unwrap();
    let unique: HashSet<&str> = problems.iter().map(|p| p.question.as_str()).collect();
    assert!(unique.len() < problems.len(), "test needs duplicates");
    let n_unique = unique.len();
    let (train, held) = split_problems(problems.clone(), 100).unwrap();
    assert_eq!((train.len() + held.len(), held.len()), (n_unique, 100));
    let train_q: HashSet<&str> = train.iter().map(|p| p.question.as_str()).collect();
    let held_q: HashSet<&str> = held.iter().map(|p| p.question.as_str()).collect();
    assert_eq!((train_q.len(), held_q.len()), (train.len(), held.len()));
    assert!(train_q.is_disjoint(&held_q));

    let err = split_problems(problems, n_unique + 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("held_out"), "{err}");
}

#[test]
fn correct_responses_earn_full_reward_and_slips_only_format_reward() {
    let mut slips = 0;
    for seed in SEEDS {
        for p in generate_problems(&spec(0.3), 300, seed).unwrap() {
            let r = r1_zero_reward(&format_response(&p.reasoning, &p.answer), &p.answer);
            assert_eq!(
                (r.format_reward, r.answer_reward, r.reward),
                (1.0, 1.0, 1.0)
            );
            let teacher = format_response(&p.teacher_reasoning, &p.teacher_answer);
            let r = r1_zero_reward(&teacher, &p.answer);
            let expected = if p.correct { 1.0 } else { 0.0 };
            assert_eq!((r.format_reward, r.answer_reward), (1.0, expected), "{p:?}");
            slips += usize::from(!p.correct);
        }
    }
    assert!(slips > 100, "too few slips ({slips}) to test");
}

fn compact() -> PromptTemplate {
    PromptTemplate::new(R1_ZERO_COMPACT).unwrap()
}

fn course_prompt() -> String {
    let path = std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("cs336/a5/prompts/r1_zero.prompt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn compact_prompt_is_the_course_prompt_without_its_preamble() {
    let full = course_prompt();
    assert!(full.trim_end().ends_with(R1_ZERO_COMPACT), "{full:?}");
    let q = "Ana has 3 apples. How many?";
    assert_eq!(
        compact().render(q),
        format!("User: {q}\nAssistant: <think>")
    );
    assert!(PromptTemplate::new(full).unwrap().render(q).contains(q));
    let err = PromptTemplate::new("User: {q}").unwrap_err().to_string();
    assert!(err.contains("{question}"), "{err}");
}

#[test]
fn pretraining_documents_are_prompt_plus_teacher_response() {
    let problems = generate_problems(&spec(0.5), 50, 9).unwrap();
    let docs = pretraining_documents(&problems, &compact());
    assert_eq!(docs.len(), problems.len());
    for (doc, p) in docs.iter().zip(&problems) {
        let prompt = compact().render(&p.question);
        let response = doc
            .strip_prefix(&prompt)
            .expect("document starts with the prompt");
        assert_eq!(
            response,
            format_response(&p.teacher_reasoning, &p.teacher_answer)
        );
    }
    assert!(PromptTemplate::new("no placeholder").is_err());
}

#[test]
fn codec_round_trips_every_generated_text() {
    let codec = CharCodec::new();
    let eos = CharCodec::eos_id();
    assert_eq!((codec.stop_token_ids(), codec.pad_id()), (vec![eos], 0));
    for seed in SEEDS {
        let problems = generate_problems(&spec(0.3), 300, seed).unwrap();
        let course = PromptTemplate::new(course_prompt()).unwrap();
        for doc in pretraining_documents(&problems, &course) {
            let ids = codec.encode(&doc).unwrap();
            assert!(
                ids.iter()
                    .all(|&id| id > eos && (id as usize) < codec.vocab_size())
            );
            assert_eq!(codec.decode(&ids), doc);
            // Padding and EOS around the text vanish on decode.
            let padded = [&[0, eos][..], &ids, &[eos, 0, 0]].concat();
            assert_eq!(codec.decode(&padded), doc);
        }
    }
}

#[test]
fn tags_are_single_tokens() {
    let codec = CharCodec::new();
    let mut tag_ids = HashSet::new();
    for tag in ["<think>", "</think>", "<answer>", "</answer>"] {
        let ids = codec.encode(tag).unwrap();
        assert_eq!(ids.len(), 1, "{tag}");
        assert_eq!(Some(ids[0]), CharCodec::tag_id(tag));
        assert!(ids[0] > CharCodec::eos_id());
        tag_ids.insert(ids[0]);
    }
    assert_eq!(tag_ids.len(), 4);
    let response = format_response("2 + 3 = 5.", "5");
    let ids = codec.encode(&response).unwrap();
    // " 2 + 3 = 5. " is 12 chars, " <answer> 5 </answer>" adds 5 more around 3 tags.
    assert_eq!(
        ids.len(),
        response.len() - "</think><answer></answer>".len() + 3
    );
    // Broken or partial tags and specials' names are plain characters.
    assert_eq!(codec.encode("</thin").unwrap().len(), 6);
    assert_eq!(codec.encode("<eos>").unwrap().len(), 5);
    assert_eq!(codec.encode("<<think>>").unwrap().len(), 3);
}

#[test]
fn unsupported_characters_are_errors_naming_char_and_offset() {
    let codec = CharCodec::new();
    let err = codec.encode("ab\tc").unwrap_err().to_string();
    assert!(
        err.contains("'\\t'") && err.contains("byte offset 2"),
        "{err}"
    );
    let err = codec.encode("<think>é").unwrap_err().to_string();
    assert!(
        err.contains("'é'") && err.contains("byte offset 7"),
        "{err}"
    );
    assert_eq!(codec.encode("").unwrap(), Vec::<u32>::new());
    let vocab = codec.vocab_size() as u32;
    let known = codec.decode(&[40]);
    assert_eq!(known.chars().count(), 1);
    assert_eq!(
        codec.decode(&[vocab, 40, u32::MAX]),
        format!("\u{FFFD}{known}\u{FFFD}")
    );
}
