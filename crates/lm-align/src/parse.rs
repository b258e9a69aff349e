//! Answer parsers for the optional evaluation part: the option letter of an MMLU response and
//! the final number of a GSM8K response.

/// One MMLU question as the course's evaluation holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmluExample {
    pub subject: String,
    pub question: String,
    /// The four options, in the order of the letters A–D.
    pub options: Vec<String>,
    /// The correct letter.
    pub answer: String,
}

const LETTERS: [char; 4] = ['A', 'B', 'C', 'D'];

/// The letter (A–D) that `model_output` states after "answer is" (any case, optional
/// `:`/`(`/quotes/`*` between), e.g. "The correct answer is B. …" → "B". When no such phrase
/// names a letter, the response is matched against the option texts instead ("The correct
/// answer is Deep learning" → the letter of that option). `None` when nothing matches or the
/// response names different letters (ambiguous).
pub fn parse_mmlu_response(example: &MmluExample, model_output: &str) -> Option<String> {
    let lower = model_output.to_lowercase();
    let mut found: Option<char> = None;
    for (pos, _) in lower.match_indices("answer is") {
        let rest = &model_output[pos + "answer is".len()..];
        let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || ":(\"'*".contains(c));
        let mut chars = rest.chars();
        let Some(letter) = chars.next().filter(|c| LETTERS.contains(c)) else {
            continue;
        };
        // A letter must stand alone ("B." or "B)"), not start a word ("Because").
        if chars.next().is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        match found {
            Some(prev) if prev != letter => return None,
            _ => found = Some(letter),
        }
    }
    if let Some(letter) = found {
        return Some(letter.to_string());
    }
    option_text_match(example, &lower)
}

/// The letter of the single option whose text follows "answer is" in the response.
fn option_text_match(example: &MmluExample, lower: &str) -> Option<String> {
    let tail = &lower[lower.rfind("answer is")? + "answer is".len()..];
    let tail = tail.trim_start_matches(|c: char| c.is_whitespace() || ":\"'*".contains(c));
    let hits: Vec<usize> = example
        .options
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let o = o.trim().to_lowercase();
            // The option must end at a word boundary ("100" is not "10000 …").
            !o.is_empty()
                && tail.starts_with(&o)
                && !tail[o.len()..].starts_with(|c: char| c.is_alphanumeric())
        })
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] if *i < LETTERS.len() => Some(LETTERS[*i].to_string()),
        _ => None,
    }
}

/// The last number written with digits in `model_output`, with thousands commas removed
/// ("1,234.5" → "1234.5", "-3" → "-3"); `None` when the output has no digit.
pub fn parse_gsm8k_response(model_output: &str) -> Option<String> {
    numbers(model_output).pop()
}

/// Every number in `text`, in order: digits with optional `,ddd` groups and one decimal part,
/// a leading `-` when it is not a binary minus (no digit right before it).
fn numbers(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let negative = start > 0
            && b[start - 1] == b'-'
            && (start < 2 || !b[start - 2].is_ascii_alphanumeric());
        let mut s = String::new();
        while i < b.len() && b[i].is_ascii_digit() {
            s.push(b[i] as char);
            i += 1;
            // A comma followed by exactly three digits is a thousands separator.
            if b.get(i) == Some(&b',')
                && b.len() >= i + 4
                && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
                && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
            {
                i += 1;
            }
        }
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            s.push('.');
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                s.push(b[i] as char);
                i += 1;
            }
        }
        out.push(if negative { format!("-{s}") } else { s });
    }
    out
}
