//! Generated arithmetic word problems with worked solutions, for the lab's tiny LM: one or
//! two steps of `+`, `-` (never below zero) or small `*`, each step written as an equation
//! ("23 + 15 = 38."). A "noisy teacher" can slip on one equation (result off by 1..=3,
//! carried through the later steps), so pretraining sees some wrong answers that SFT on
//! the correct subset and GRPO can then improve on.

use std::collections::HashSet;

use lm_core::{LmError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How problems are drawn (a `[toy]`-style config table; missing keys take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArithmeticSpec {
    /// Largest number a question states for `+` and `-` (at least 2); `*` factors stay in
    /// 2..=12.
    pub max_operand: u32,
    /// Probability that a problem takes two steps.
    pub two_step_fraction: f64,
    /// Probability that the teacher's worked solution contains one arithmetic slip.
    pub noise: f64,
}

impl Default for ArithmeticSpec {
    fn default() -> Self {
        Self {
            max_operand: 99,
            two_step_fraction: 0.3,
            noise: 0.0,
        }
    }
}

impl ArithmeticSpec {
    pub fn validate(&self) -> Result<()> {
        if self.max_operand < 2 {
            return Err(LmError::config("max_operand", "must be at least 2"));
        }
        for (field, p) in [
            ("two_step_fraction", self.two_step_fraction),
            ("noise", self.noise),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(LmError::config(field, format!("is {p}, must be in [0, 1]")));
            }
        }
        Ok(())
    }
}

/// One problem with its true solution and what the (possibly noisy) teacher wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub question: String,
    /// The correct worked arithmetic, one equation per step: "23 + 15 = 38. 38 - 4 = 34."
    pub reasoning: String,
    /// The true answer (the ground truth for the reward).
    pub answer: String,
    /// The teacher's worked arithmetic: `reasoning`, or with one slipped equation.
    pub teacher_reasoning: String,
    /// The teacher's final answer (the result of its last equation).
    pub teacher_answer: String,
    /// Whether the teacher got it right (`teacher_answer == answer`).
    pub correct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
        }
    }

    /// `None` when a subtraction would go below zero.
    fn apply(self, a: u64, b: u64) -> Option<u64> {
        match self {
            Op::Add => Some(a + b),
            Op::Sub => a.checked_sub(b),
            Op::Mul => Some(a * b),
        }
    }
}

/// A question with placeholders `{A}`, `{B}` (two different names), `{obj}` (a plural
/// noun) and `{x}`, `{y}`, `{z}` (the operands: the first op takes x and y, the second z).
struct Template {
    ops: &'static [Op],
    text: &'static str,
}

const ONE_STEP: &[Template] = &[
    Template {
        ops: &[Op::Add],
        text: "{A} has {x} {obj} and finds {y} more. How many {obj} does {A} have now?",
    },
    Template {
        ops: &[Op::Add],
        text: "{A} has {x} {obj} and {B} has {y} {obj}. How many {obj} do they have together?",
    },
    Template {
        ops: &[Op::Sub],
        text: "{A} has {x} {obj} and gives {y} to {B}. How many {obj} does {A} have left?",
    },
    Template {
        ops: &[Op::Sub],
        text: "There are {x} {obj} in a box. {A} takes out {y}. How many {obj} are still in the box?",
    },
    Template {
        ops: &[Op::Mul],
        text: "{A} buys {x} bags with {y} {obj} in each bag. How many {obj} does {A} buy?",
    },
    Template {
        ops: &[Op::Mul],
        text: "A shelf has {x} rows with {y} {obj} in each row. How many {obj} are on the shelf?",
    },
];

const TWO_STEP: &[Template] = &[
    Template {
        ops: &[Op::Add, Op::Sub],
        text: "{A} has {x} {obj}, finds {y} more and then gives {z} to {B}. How many {obj} does {A} have now?",
    },
    Template {
        ops: &[Op::Sub, Op::Add],
        text: "There are {x} {obj} in a box. {A} takes out {y} and {B} puts in {z}. How many {obj} are in the box now?",
    },
    Template {
        ops: &[Op::Mul, Op::Add],
        text: "{A} buys {x} bags with {y} {obj} in each bag and already had {z}. How many {obj} does {A} have now?",
    },
    Template {
        ops: &[Op::Mul, Op::Sub],
        text: "{A} packs {x} boxes with {y} {obj} in each box and gives {z} to {B}. How many {obj} does {A} have left?",
    },
];

const NAMES: &[&str] = &[
    "Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Ivy", "Jon", "Kim", "Leo", "Mia", "Noor",
    "Omar", "Pia", "Raj", "Sam", "Tess", "Uma", "Zoe",
];
const OBJECTS: &[&str] = &[
    "apples", "marbles", "stickers", "books", "pencils", "coins", "cookies", "shells", "cards",
    "stamps", "beads", "plums",
];
/// Largest factor of a multiplication, so products stay small enough to learn.
const MAX_FACTOR: u64 = 12;
/// Largest size of a teacher's slip.
const MAX_SLIP: u64 = 3;

/// `n` problems drawn from `spec`, the same for the same `seed`.
pub fn generate_problems(spec: &ArithmeticSpec, n: usize, seed: u64) -> Result<Vec<Problem>> {
    spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((0..n).map(|_| generate_one(spec, &mut rng)).collect())
}

fn generate_one(spec: &ArithmeticSpec, rng: &mut ChaCha8Rng) -> Problem {
    let pool = if rng.random_bool(spec.two_step_fraction) {
        TWO_STEP
    } else {
        ONE_STEP
    };
    let template = &pool[rng.random_range(0..pool.len())];
    let max = u64::from(spec.max_operand);
    let factor_max = MAX_FACTOR.min(max);

    // Operands: the first op's two, then one per later op, drawn so no value goes negative.
    let first = template.ops[0];
    let x = rng.random_range(2..=if first == Op::Mul { factor_max } else { max });
    let mut operands = vec![x];
    let mut running = x;
    for &op in template.ops {
        let operand = match op {
            Op::Add => rng.random_range(2..=max),
            Op::Sub => rng.random_range(1.min(running)..=running.min(max)),
            Op::Mul => rng.random_range(2..=factor_max),
        };
        running = op
            .apply(running, operand)
            .expect("operands keep values non-negative");
        operands.push(operand);
    }

    let a = rng.random_range(0..NAMES.len());
    let b = (a + rng.random_range(1..NAMES.len())) % NAMES.len();
    let object = OBJECTS[rng.random_range(0..OBJECTS.len())];
    let mut question = template
        .text
        .replace("{A}", NAMES[a])
        .replace("{B}", NAMES[b])
        .replace("{obj}", object);
    for (slot, value) in ["{x}", "{y}", "{z}"].iter().zip(&operands) {
        question = question.replace(slot, &value.to_string());
    }

    let (reasoning, answer) =
        work(template.ops, &operands, None).expect("operands keep values non-negative");
    let slip = rng.random_bool(spec.noise).then(|| {
        let step = rng.random_range(0..template.ops.len());
        let size = rng.random_range(1..=MAX_SLIP) as i64;
        (step, if rng.random_bool(0.5) { size } else { -size })
    });
    let (teacher_reasoning, teacher_answer) = match slip {
        None => (reasoning.clone(), answer),
        // A downward slip can take a value below zero; the teacher then errs upward instead.
        Some((step, delta)) => work(template.ops, &operands, Some((step, delta)))
            .or_else(|| work(template.ops, &operands, Some((step, delta.abs()))))
            .expect("an upward slip keeps every value non-negative"),
    };
    Problem {
        question,
        reasoning,
        answer: answer.to_string(),
        teacher_reasoning,
        teacher_answer: teacher_answer.to_string(),
        // Every later op is injective in its running value (`*` factors are >= 2), so a
        // slip always changes the final answer.
        correct: teacher_answer == answer,
    }
}

/// The worked equations of `ops` over `operands` and the final value. `slip = (step, delta)`
/// adds `delta` to that step's result (the later steps carry the wrong value on correctly);
/// `None` when some value would go below zero.
fn work(ops: &[Op], operands: &[u64], slip: Option<(usize, i64)>) -> Option<(String, u64)> {
    let mut running = operands[0];
    let mut equations = Vec::with_capacity(ops.len());
    for (step, (&op, &operand)) in ops.iter().zip(&operands[1..]).enumerate() {
        let mut result = op.apply(running, operand)?;
        if let Some((_, delta)) = slip.filter(|(s, _)| *s == step) {
            result = result.checked_add_signed(delta)?;
        }
        equations.push(format!("{running} {} {operand} = {result}.", op.symbol()));
        running = result;
    }
    Some((equations.join(" "), running))
}

/// `problems` without repeated questions (first kept), split into `(train, held_out)` with
/// the last `held_out` for held-out: no question appears in both.
pub fn split_problems(
    problems: Vec<Problem>,
    held_out: usize,
) -> Result<(Vec<Problem>, Vec<Problem>)> {
    let mut seen = HashSet::new();
    let mut unique: Vec<Problem> = problems
        .into_iter()
        .filter(|p| seen.insert(p.question.clone()))
        .collect();
    if held_out > unique.len() {
        return Err(LmError::config(
            "held_out",
            format!(
                "is {held_out}, but only {} distinct problems were generated",
                unique.len()
            ),
        ));
    }
    let held = unique.split_off(unique.len() - held_out);
    Ok((unique, held))
}
