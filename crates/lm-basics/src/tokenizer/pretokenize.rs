//! Pre-tokenization: GPT-2's split pattern, special-token splitting, and safe chunk boundaries.
//!
//! The pattern is
//! `'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//! It needs a look-ahead, which makes regex engines slow; [`Gpt2Splitter`] implements the same
//! leftmost-first semantics as a hand-written scanner (checked against `fancy-regex` in tests).

use aho_corasick::{AhoCorasick, MatchKind};
use unicode_general_category::{GeneralCategory as Gc, get_general_category};

/// The pattern, as written for regex engines (HF `tokenizer.json`, tests).
pub const GPT2_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

#[inline]
fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => Class::Letter,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// Iterator over the GPT-2 pre-tokens of a text.
pub struct Gpt2Splitter<'a> {
    text: &'a str,
    pos: usize,
}

/// Splits `text` into GPT-2 pre-tokens (concatenated they give `text` back).
pub fn split_gpt2(text: &str) -> Gpt2Splitter<'_> {
    Gpt2Splitter { text, pos: 0 }
}

impl<'a> Gpt2Splitter<'a> {
    /// End of the run of chars of class `k` starting at byte `i`.
    #[inline]
    fn run_end(&self, mut i: usize, k: Class) -> usize {
        let bytes = self.text.as_bytes();
        while i < bytes.len() {
            // ASCII fast path avoids decoding for the common case.
            let b = bytes[i];
            if b < 0x80 {
                if class(b as char) != k {
                    break;
                }
                i += 1;
            } else {
                let c = self.text[i..].chars().next().expect("char boundary");
                if class(c) != k {
                    break;
                }
                i += c.len_utf8();
            }
        }
        i
    }

    fn contraction_len(rest: &[u8]) -> usize {
        match rest {
            [b'\'', b'l', b'l', ..] | [b'\'', b'v', b'e', ..] | [b'\'', b'r', b'e', ..] => 3,
            [b'\'', b's' | b'd' | b'm' | b't', ..] => 2,
            _ => 0,
        }
    }
}

impl<'a> Iterator for Gpt2Splitter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let rest = &self.text[start..];
        let mut chars = rest.chars();
        let first = chars.next()?;
        let n = Self::contraction_len(rest.as_bytes());
        let end = if n > 0 {
            start + n
        } else {
            // ` ?X+`: an optional leading space joins a run of letters, numbers or "other".
            let (body_start, body_class) = match (first, chars.next()) {
                (' ', Some(c)) if class(c) != Class::Space => (start + 1, class(c)),
                _ => (start, class(first)),
            };
            if body_class != Class::Space {
                self.run_end(body_start, body_class)
            } else {
                // `\s+(?!\S)` then `\s+`: a whitespace run leaves its last char to the next
                // token when a non-space follows, unless the run is that one char.
                let run_end = self.run_end(start, Class::Space);
                if run_end == self.text.len() {
                    run_end
                } else {
                    let last = self.text[..run_end]
                        .chars()
                        .next_back()
                        .expect("non-empty run");
                    let shortened = run_end - last.len_utf8();
                    if shortened > start {
                        shortened
                    } else {
                        run_end
                    }
                }
            }
        };
        self.pos = end;
        Some(&self.text[start..end])
    }
}

/// Splits text on special tokens, longest match first (so `<|a|><|a|>` registered as its own
/// special wins over two `<|a|>`).
#[derive(Clone, Debug)]
pub struct SpecialSplitter {
    matcher: Option<AhoCorasick>,
    pub tokens: Vec<String>,
    max_len: usize,
}

/// A piece of text: ordinary text, or special token number `i` of the splitter's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Special(usize),
}

impl SpecialSplitter {
    pub fn new(tokens: &[String]) -> Self {
        let tokens: Vec<String> = tokens.iter().filter(|t| !t.is_empty()).cloned().collect();
        let matcher = (!tokens.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&tokens)
                .expect("special tokens form a valid automaton")
        });
        let max_len = tokens.iter().map(String::len).max().unwrap_or(0);
        Self {
            matcher,
            tokens,
            max_len,
        }
    }

    /// Longest special token in bytes (0 without specials).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Ordinary-text and special-token pieces of `text`, in order; empty texts are skipped.
    pub fn pieces<'a>(&self, text: &'a str) -> Vec<Piece<'a>> {
        let mut out = Vec::new();
        let mut last = 0;
        if let Some(m) = &self.matcher {
            for hit in m.find_iter(text) {
                if hit.start() > last {
                    out.push(Piece::Text(&text[last..hit.start()]));
                }
                out.push(Piece::Special(hit.pattern().as_usize()));
                last = hit.end();
            }
        }
        if last < text.len() {
            out.push(Piece::Text(&text[last..]));
        }
        out
    }

    /// Whether a special token occurrence covers byte `i` strictly inside it.
    fn straddles(&self, text: &str, i: usize) -> bool {
        let Some(m) = &self.matcher else { return false };
        let lo = i.saturating_sub(self.max_len);
        let lo = (lo..=i).find(|&j| text.is_char_boundary(j)).unwrap_or(i);
        let hi = (i + self.max_len).min(text.len());
        let hi = (hi..=text.len())
            .find(|&j| text.is_char_boundary(j))
            .unwrap_or(text.len());
        m.find_iter(&text[lo..hi])
            .any(|h| lo + h.start() < i && i < lo + h.end())
    }

    /// Cut points `0 = c₀ < c₁ < … < cₙ = text.len()` splitting `text` into pieces of about
    /// `chunk` bytes at safe boundaries (see [`Self::last_safe_cut`]).
    pub fn chunk_cuts(&self, text: &str, chunk: usize) -> Vec<usize> {
        let mut cuts = vec![0];
        for target in (chunk.max(1)..text.len()).step_by(chunk.max(1)) {
            match self.last_safe_cut(text, target) {
                Some(c) if c > *cuts.last().expect("non-empty") => cuts.push(c),
                _ => {}
            }
        }
        if !text.is_empty() {
            cuts.push(text.len());
        }
        cuts
    }

    /// The last byte offset `b ≤ limit` where `text` can be cut so that pre-tokenizing the two
    /// halves separately gives the same pre-tokens as the whole: a non-space char followed by
    /// a whitespace char (no pre-token contains that transition), outside any special token.
    /// `limit` is kept `max_len` bytes from a partial special token at the end of a buffer.
    pub fn last_safe_cut(&self, text: &str, limit: usize) -> Option<usize> {
        let bytes = text.as_bytes();
        let mut i = limit.min(text.len());
        while i > 0 {
            if text.is_char_boundary(i) && i < text.len() {
                let cur = text[i..].chars().next().expect("boundary");
                if cur.is_whitespace() {
                    let prev = text[..i].chars().next_back().expect("i > 0");
                    if !prev.is_whitespace() && !self.straddles(text, i) {
                        return Some(i);
                    }
                }
            }
            i -= 1;
            // Skip quickly over ASCII non-space bytes.
            while i > 0 && bytes[i].is_ascii() && !bytes[i].is_ascii_whitespace() {
                i -= 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle(text: &str) -> Vec<String> {
        let re = fancy_regex::Regex::new(GPT2_PATTERN).unwrap();
        re.find_iter(text)
            .map(|m| m.unwrap().as_str().to_string())
            .collect()
    }

    fn ours(text: &str) -> Vec<String> {
        split_gpt2(text).map(str::to_string).collect()
    }

    #[test]
    fn matches_regex_on_tricky_strings() {
        for text in [
            "",
            "Hello, how are you?",
            "a\n\n\nb",
            "  leading and trailing  ",
            "tabs\t\tand\r\nCRLF\n",
            "it's they'll we've you're I'm he'd don't ''s 's",
            "numbers 1234 and 12.5 and ½ Ⅻ ٣",
            "üñíçødé 🙃 emoji 🙃🙃 mixed中文字符",
            " \u{a0}nbsp\u{2003}em space\u{3000}ideographic",
            "punct!!! ... ??? ---",
            "end with spaces   ",
            "\n",
            " ",
            "x \n y",
            "'",
            "'ll",
            " 's",
        ] {
            assert_eq!(ours(text), oracle(text), "{text:?}");
        }
    }

    #[test]
    fn matches_regex_on_course_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/cs336/a1/fixtures");
        for f in [
            "corpus.en",
            "address.txt",
            "german.txt",
            "tinystories_sample.txt",
        ] {
            let Ok(text) = std::fs::read_to_string(dir.join(f)) else {
                continue;
            };
            assert_eq!(ours(&text), oracle(&text), "{f}");
        }
    }

    #[test]
    fn specials_longest_first() {
        let s = SpecialSplitter::new(&["<|e|>".into(), "<|e|><|e|>".into()]);
        let p = s.pieces("a<|e|><|e|>b<|e|>");
        assert_eq!(
            p,
            vec![
                Piece::Text("a"),
                Piece::Special(1),
                Piece::Text("b"),
                Piece::Special(0)
            ]
        );
    }

    #[test]
    fn safe_cuts_preserve_pretokens() {
        let s = SpecialSplitter::new(&["<|end of text|>".into()]);
        let text = "one two<|end of text|>  three\n\n\nfour five";
        for limit in 0..=text.len() {
            if let Some(c) = s.last_safe_cut(text, limit) {
                assert!(c <= limit);
                let mut joined = ours(&text[..c]);
                joined.extend(ours(&text[c..]));
                assert_eq!(joined, ours(text), "cut at {c}");
                assert!(!s.straddles(text, c), "cut inside the special token at {c}");
            }
        }
    }
}
