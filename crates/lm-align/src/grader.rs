//! The R1-Zero style math reward: a format check (`… </think> <answer> … </answer>`) and an
//! answer check that extracts `\boxed{}` (or the answer tag's text), normalises its LaTeX and
//! compares it with the ground truth as strings, as numbers (a small LaTeX arithmetic
//! evaluator, no CAS) or element by element for tuples and intervals.

/// Reward of one response; `reward` is 1 only when both the format and the answer are right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reward {
    pub format_reward: f64,
    pub answer_reward: f64,
    pub reward: f64,
}

impl Reward {
    fn new(format: bool, answer: bool) -> Self {
        let (f, a) = (f64::from(u8::from(format)), f64::from(u8::from(answer)));
        Self {
            format_reward: f,
            answer_reward: a,
            reward: f * a,
        }
    }
}

/// The reward of `response` (the text after the prompt's opening `<think>`) against
/// `ground_truth` (an answer, or a solution whose last `\boxed{}` is the answer). The format
/// needs `</think> <answer>` and `</answer>`; the answer is the last answer tag's text, or the
/// last `\boxed{}` inside it when there is one.
pub fn r1_zero_reward(response: &str, ground_truth: &str) -> Reward {
    if !(response.contains("</think> <answer>") && response.contains("</answer>")) {
        return Reward::new(false, false);
    }
    let tail = response.rsplit("<answer>").next().unwrap_or_default();
    let tagged = tail.replace("</answer>", "");
    let given = if tagged.contains("\\boxed") || tagged.contains("\\fbox") {
        match last_boxed(&tagged) {
            Some(b) => b,
            None => return Reward::new(true, false),
        }
    } else {
        tagged
    };
    Reward::new(true, grade(&given, ground_truth))
}

/// Whether answer `given` equals `ground_truth` (see the module doc).
pub fn grade(given: &str, ground_truth: &str) -> bool {
    let truth = last_boxed(ground_truth).unwrap_or_else(|| ground_truth.to_string());
    let (g, t) = (normalize_answer(given), normalize_answer(&truth));
    !g.is_empty() && equal_normalized(&g, &t)
}

/// The content of the last `\boxed{…}` / `\fbox{…}` (balanced braces) or `\boxed x`.
pub fn last_boxed(text: &str) -> Option<String> {
    let (pos, cmd) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|c| text.rfind(c).map(|p| (p, *c)))
        .max_by_key(|(p, _)| *p)?;
    let rest = &text[pos + cmd.len()..];
    if let Some(inner) = rest.strip_prefix('{') {
        let end = matching_brace(inner)?;
        return Some(inner[..end].to_string());
    }
    // `\boxed 5`: the word after one space.
    let word = rest.strip_prefix(' ')?.split(['$', ' ', '\n']).next()?;
    (!word.is_empty()).then(|| word.to_string())
}

/// Byte index of the `}` closing an already-opened `{` at the start of `s`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Canonical form of an answer: no `$`, spacing commands, `\left`/`\right`, degrees, percent
/// or dollar signs, unit text, `\dfrac`/`\tfrac`, thousands commas, white space, trailing `.`
/// or a leading `x =`; `\frac12` and `\sqrt2` get braces.
pub fn normalize_answer(answer: &str) -> String {
    // Dollar signs go first so that `$\text{Evelyn}$` is not read as a unit after `$`.
    let mut s = answer
        .replace("\\$", "")
        .replace('$', "")
        .trim()
        .to_string();
    s = strip_text_commands(&s);
    for (from, to) in [
        ("\\displaystyle", ""),
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", ""),
        ("~", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("°", ""),
        ("\\%", ""),
        ("%", ""),
    ] {
        s = s.replace(from, to);
    }
    s.retain(|c| !c.is_whitespace());
    while s.ends_with('.') || s.ends_with(',') {
        s.pop();
    }
    s = strip_variable_assignment(&s);
    s = brace_shorthand(&s, "\\frac", 2);
    s = brace_shorthand(&s, "\\sqrt", 1);
    if is_thousands_number(&s) {
        s.retain(|c| c != ',');
    }
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    // A lone option letter in parentheses: "(C)" → "C".
    if let [b'(', l, b')'] = s.as_bytes()
        && l.is_ascii_alphabetic()
    {
        s = (*l as char).to_string();
    }
    s
}

/// `\text{…}`/`\textbf{…}`/`\mbox{…}`/`\mathrm{…}`: a trailing one after other content is a
/// unit and dropped; any other is replaced by its content.
fn strip_text_commands(s: &str) -> String {
    let mut out = s.to_string();
    for cmd in ["\\text", "\\textbf", "\\mbox", "\\mathrm", "\\mathbf"] {
        while let Some(pos) = find_command(&out, cmd) {
            let open = pos + cmd.len();
            let Some(len) = matching_brace(&out[open + 1..]) else {
                break;
            };
            let inner = out[open + 1..open + 1 + len].to_string();
            let after = out[open + 2 + len..].trim().trim_end_matches(['.', '$']);
            let before = out[..pos].trim();
            let is_unit = after.is_empty()
                && !before.is_empty()
                && inner.chars().any(|c| c.is_alphabetic())
                && !before.ends_with(['(', ',', '{']);
            let replacement = if is_unit { String::new() } else { inner };
            out = format!("{}{}{}", &out[..pos], replacement, &out[open + 2 + len..]);
        }
    }
    out
}

/// Position of `cmd{` in `s` where `cmd` is not the prefix of a longer command name.
fn find_command(s: &str, cmd: &str) -> Option<usize> {
    s.match_indices(cmd)
        .map(|(p, _)| p)
        .find(|&p| s[p + cmd.len()..].starts_with('{'))
}

/// "x=5" → "5" (a single variable name on the left, one `=`).
fn strip_variable_assignment(s: &str) -> String {
    if let Some((lhs, rhs)) = s.split_once('=')
        && !rhs.contains('=')
        && !rhs.is_empty()
        && lhs.len() <= 2
        && lhs.chars().all(|c| c.is_ascii_alphabetic())
    {
        return rhs.to_string();
    }
    s.to_string()
}

/// `\frac12` → `\frac{1}{2}`, `\sqrt2` → `\sqrt{2}`: single-character arguments braced.
fn brace_shorthand(s: &str, cmd: &str, args: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(cmd) {
        out.push_str(&rest[..pos + cmd.len()]);
        rest = &rest[pos + cmd.len()..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue; // a longer command name
        }
        for _ in 0..args {
            if let Some(inner) = rest.strip_prefix('{') {
                // Already braced: keep the group, fixing shorthand nested inside it.
                let Some(end) = matching_brace(inner) else {
                    break;
                };
                out.push('{');
                out.push_str(&brace_shorthand(&inner[..end], cmd, args));
                out.push('}');
                rest = &inner[end + 1..];
                continue;
            }
            if rest.starts_with(['\\', '[']) {
                break; // a command argument or `\sqrt[n]`: left as is
            }
            let Some(c) = rest.chars().next() else { break };
            out.push('{');
            out.push(c);
            out.push('}');
            rest = &rest[c.len_utf8()..];
        }
    }
    out.push_str(rest);
    out
}

/// "12,345" or "-1,234.5": digit groups of three after commas.
fn is_thousands_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let int = s.split('.').next().unwrap_or_default();
    let mut groups = int.split(',');
    let first = groups.next().unwrap_or_default();
    let rest: Vec<&str> = groups.collect();
    !rest.is_empty()
        && (1..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_digit())
        && rest
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
        && s.split('.')
            .nth(1)
            .is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
}

fn equal_normalized(g: &str, t: &str) -> bool {
    if g == t {
        return true;
    }
    if let (Some(a), Some(b)) = (evaluate(g), evaluate(t)) {
        return (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    }
    // Tuples and intervals: same brackets, equal elements.
    match (split_tuple(g), split_tuple(t)) {
        (Some((go, gc, ge)), Some((to, tc, te))) => {
            go == to
                && gc == tc
                && ge.len() == te.len()
                && ge.len() > 1
                && ge.iter().zip(&te).all(|(a, b)| equal_normalized(a, b))
        }
        _ => false,
    }
}

/// `(a,b,…)` / `[a,b)` / `a,b` → (open, close, top-level elements).
fn split_tuple(s: &str) -> Option<(char, char, Vec<String>)> {
    let first = s.chars().next()?;
    let last = s.chars().last()?;
    let (open, close, inner) = if "([".contains(first) && ")]".contains(last) && s.len() >= 2 {
        (first, last, &s[1..s.len() - 1])
    } else {
        (' ', ' ', s)
    };
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(inner[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(inner[start..].to_string());
    (parts.len() > 1).then_some((open, close, parts))
}

/// Value of a normalised arithmetic expression: numbers, `+ - * /`, `^`, `\cdot`, `\times`,
/// `\frac{}{}`, `\sqrt{}` / `\sqrt[n]{}`, `\pi`, brackets and implicit products; `None` for
/// anything else (variables, sets, text).
pub fn evaluate(s: &str) -> Option<f64> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.expr()?;
    (p.i == p.s.len() && v.is_finite()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Nesting of `unary`/`atom` calls, bounded so that a pathological response
    /// ("((((…" or "----…") cannot overflow the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 200;

impl Parser<'_> {
    fn eat(&mut self, tok: &str) -> bool {
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        loop {
            if self.eat("+") {
                v += self.term()?;
            } else if self.eat("-") {
                v -= self.term()?;
            } else {
                return Some(v);
            }
        }
    }

    fn term(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") || self.eat("\\cdot") || self.eat("\\times") {
                v *= self.unary()?;
            } else if self.eat("/") || self.eat("\\div") {
                v /= self.unary()?;
            } else if self.starts_atom() {
                v *= self.power()?;
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self) -> Option<f64> {
        self.depth += 1;
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Option<f64> {
        if self.depth > MAX_DEPTH {
            return None;
        }
        if self.eat("-") {
            return Some(-self.unary()?);
        }
        if self.eat("+") {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.atom()?;
        if self.eat("^") {
            let exp = if self.eat("-") {
                -self.atom()?
            } else {
                self.atom()?
            };
            return Some(base.powf(exp));
        }
        Some(base)
    }

    fn starts_atom(&self) -> bool {
        let rest = &self.s[self.i..];
        rest.first()
            .is_some_and(|c| c.is_ascii_digit() || b"({[".contains(c))
            || [&b"\\frac"[..], b"\\sqrt", b"\\pi"]
                .iter()
                .any(|t| rest.starts_with(t))
    }

    fn atom(&mut self) -> Option<f64> {
        self.depth += 1;
        let v = self.atom_inner();
        self.depth -= 1;
        v
    }

    fn atom_inner(&mut self) -> Option<f64> {
        if self.depth > MAX_DEPTH {
            return None;
        }
        for (open, close) in [("{", "}"), ("(", ")")] {
            if self.eat(open) {
                let v = self.expr()?;
                return self.eat(close).then_some(v);
            }
        }
        if self.eat("\\frac") {
            let num = self.atom()?;
            let den = self.atom()?;
            return Some(num / den);
        }
        if self.eat("\\sqrt") {
            let root = if self.eat("[") {
                let r = self.expr()?;
                self.eat("]").then_some(r)?
            } else {
                2.0
            };
            return Some(self.atom()?.powf(1.0 / root));
        }
        if self.eat("\\pi") {
            return Some(std::f64::consts::PI);
        }
        self.number()
    }

    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.') {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
}
