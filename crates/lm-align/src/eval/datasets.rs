//! Evaluation sets: GSM8K and MATH-style JSONL, MMLU CSV. Every error names the file and
//! the line of the bad record.

use std::path::{Path, PathBuf};

use lm_core::{LmError, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Scorer;
use crate::grader::last_boxed;

/// One question with its reference answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalExample {
    /// The dataset's own id (`unique_id`, `id` or `idx`) when it has one, else the row.
    pub id: String,
    /// The text that fills the prompt template's `{question}`.
    pub question: String,
    /// GSM8K: the final number (no commas); MATH: the answer; MMLU: the letter A–D.
    pub ground_truth: String,
    /// MMLU's four option texts (for matching a response that names an option); empty else.
    pub options: Vec<String>,
}

/// A set of examples and how responses to them are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub examples: Vec<EvalExample>,
    pub scorer: Scorer,
}

/// The file layouts the readers know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// JSONL `{question, answer}`, the answer ending in `#### N`.
    Gsm8k,
    /// JSONL `{problem, answer}` or `{problem, solution}` (answer = the last `\boxed{}`).
    Math,
    /// The course's MMLU CSV files (`question,A,B,C,D,letter`, no header), or a folder of them.
    Mmlu,
}

impl DatasetFormat {
    /// A folder or `.csv` file is MMLU; JSONL with `problem` is MATH, with `question` GSM8K.
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() || path.extension().is_some_and(|e| e == "csv") {
            return Ok(Self::Mmlu);
        }
        let rows = jsonl_objects(path)?;
        match rows.first() {
            Some((_, o)) if o.contains_key("problem") => Ok(Self::Math),
            Some((_, o)) if o.contains_key("question") => Ok(Self::Gsm8k),
            Some((line, _)) => Err(bad(path, *line, "has neither `problem` nor `question`")),
            None => Err(bad(path, 1, "no records")),
        }
    }

    pub fn scorer(self) -> Scorer {
        match self {
            Self::Gsm8k | Self::Math => Scorer::R1Zero,
            Self::Mmlu => Scorer::MmluLetter,
        }
    }

    pub fn read(self, path: &Path) -> Result<Dataset> {
        let examples = match self {
            Self::Gsm8k => read_gsm8k(path)?,
            Self::Math => read_math(path)?,
            Self::Mmlu => read_mmlu(path)?,
        };
        Ok(Dataset {
            examples,
            scorer: self.scorer(),
        })
    }
}

/// Reads `path` in the format [`DatasetFormat::detect`] finds.
pub fn read_dataset(path: &Path) -> Result<Dataset> {
    DatasetFormat::detect(path)?.read(path)
}

pub fn read_gsm8k(path: &Path) -> Result<Vec<EvalExample>> {
    jsonl_objects(path)?
        .into_iter()
        .enumerate()
        .map(|(row, (line, o))| {
            let answer = field(&o, "answer", path, line)?;
            let (_, n) = answer
                .rsplit_once("####")
                .ok_or_else(|| bad(path, line, "`answer` has no `#### N` final answer"))?;
            let n = n.trim().replace(',', "");
            if n.is_empty() {
                return Err(bad(path, line, "`answer` has an empty `####` final answer"));
            }
            Ok(EvalExample {
                id: id_of(&o, row),
                question: field(&o, "question", path, line)?.to_string(),
                ground_truth: n,
                options: Vec::new(),
            })
        })
        .collect()
}

pub fn read_math(path: &Path) -> Result<Vec<EvalExample>> {
    jsonl_objects(path)?
        .into_iter()
        .enumerate()
        .map(|(row, (line, o))| {
            let ground_truth = match o.get("answer") {
                Some(Value::String(a)) => a.clone(),
                _ => last_boxed(field(&o, "solution", path, line)?).ok_or_else(|| {
                    bad(
                        path,
                        line,
                        "no `answer`, and `solution` has no \\boxed{} answer",
                    )
                })?,
            };
            Ok(EvalExample {
                id: id_of(&o, row),
                question: field(&o, "problem", path, line)?.to_string(),
                ground_truth,
                options: Vec::new(),
            })
        })
        .collect()
}

/// One MMLU CSV file, or every `*.csv` in a folder (sorted by name). The subject comes from
/// the file name (`college_biology_test.csv` → "college biology"); the question text is the
/// course's zero-shot MMLU prompt (use it with a `{question}`-only template).
pub fn read_mmlu(path: &Path) -> Result<Vec<EvalExample>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LmError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in &files {
        out.extend(read_mmlu_file(file)?);
    }
    Ok(out)
}

fn read_mmlu_file(path: &Path) -> Result<Vec<EvalExample>> {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let subject_key = ["_test", "_dev", "_val"]
        .iter()
        .find_map(|s| stem.strip_suffix(s))
        .unwrap_or(&stem)
        .to_string();
    let subject = subject_key.replace('_', " ");
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    parse_csv(&text)
        .map_err(|line| bad(path, line, "unterminated quoted field"))?
        .into_iter()
        .enumerate()
        .map(|(row, (line, f))| {
            let [question, a, b, c, d, answer] = <[String; 6]>::try_from(f)
                .map_err(|f| bad(path, line, &format!("expected 6 fields, got {}", f.len())))?;
            let answer = answer.trim().to_string();
            if !["A", "B", "C", "D"].contains(&answer.as_str()) {
                return Err(bad(path, line, &format!("answer {answer:?} is not A-D")));
            }
            let options = vec![a, b, c, d];
            Ok(EvalExample {
                id: format!("{subject_key}:{row}"),
                question: mmlu_question(&subject, &question, &options),
                ground_truth: answer,
                options,
            })
        })
        .collect()
}

/// The course's zero-shot MMLU prompt for one question.
fn mmlu_question(subject: &str, question: &str, options: &[String]) -> String {
    let mut s = format!(
        "Answer the following multiple choice question about {subject}. Respond with a single \
         sentence of the form \"The correct answer is _\", filling the blank with the letter \
         corresponding to the correct answer (i.e., A, B, C or D).\n\nQuestion: {question}\n"
    );
    for (letter, option) in ['A', 'B', 'C', 'D'].iter().zip(options) {
        s.push_str(&format!("{letter}. {option}\n"));
    }
    s.push_str("Answer:");
    s
}

/// RFC 4180 records with the 1-based line each starts on: `,` separates fields, `"…"`
/// quotes (with `""` for a quote) may hold commas and newlines. Blank lines are skipped.
/// `Err(line)`: a quote opened on that line never closes.
fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, usize> {
    let mut records = Vec::new();
    let (mut fields, mut field) = (Vec::new(), String::new());
    let (mut line, mut start, mut quoted_from) = (1, 1, None);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        match (quoted_from, c) {
            (Some(_), '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (Some(_), '"') => quoted_from = None,
            (Some(_), _) => field.push(c),
            (None, '"') if field.is_empty() => quoted_from = Some(line),
            (None, ',') => fields.push(std::mem::take(&mut field)),
            (None, '\r') if chars.peek() == Some(&'\n') => {}
            (None, '\n') => {
                fields.push(std::mem::take(&mut field));
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    records.push((start, std::mem::take(&mut fields)));
                }
                fields.clear(); // a blank line's lone empty field
                start = line;
            }
            (None, _) => field.push(c),
        }
    }
    if let Some(open) = quoted_from {
        return Err(open);
    }
    fields.push(field);
    if !(fields.len() == 1 && fields[0].is_empty()) {
        records.push((start, fields));
    }
    Ok(records)
}

/// The JSON object of every non-blank line, with its 1-based line number.
/// Every non-blank line of a JSONL file as a `T`, with its 1-based line number; a line that
/// does not parse is an error naming the file and line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| match serde_json::from_str(l) {
            Ok(value) => Ok((i + 1, value)),
            Err(e) => Err(bad(path, i + 1, &format!("invalid JSON: {e}"))),
        })
        .collect()
}

fn jsonl_objects(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    read_jsonl::<Value>(path)?
        .into_iter()
        .map(|(line, v)| match v {
            Value::Object(o) => Ok((line, o)),
            _ => Err(bad(path, line, "is not a JSON object")),
        })
        .collect()
}

fn field<'a>(o: &'a Map<String, Value>, key: &str, path: &Path, line: usize) -> Result<&'a str> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(path, line, &format!("`{key}` is not a string"))),
        None => Err(bad(path, line, &format!("missing `{key}`"))),
    }
}

fn id_of(o: &Map<String, Value>, row: usize) -> String {
    ["unique_id", "id", "idx"]
        .iter()
        .find_map(|k| match o.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| row.to_string())
}

fn bad(path: &Path, line: usize, reason: &str) -> LmError {
    LmError::BadFile {
        file: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    }
}
