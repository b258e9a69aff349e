//! The Gopher quality rules (Rae et al., 2021) with the course's thresholds: keep a document
//! only if it has 50 to 100,000 words, a mean word length of 3 to 10 characters, at most 30%
//! of its lines ending in an ellipsis, and at least 80% of its words containing a letter.
//!
//! Words are whitespace-separated tokens; lengths count characters, not bytes; lines are the
//! non-blank lines of the text (blank separator lines would otherwise dilute the ellipsis
//! share).

use serde::Serialize;

pub const MIN_WORDS: usize = 50;
pub const MAX_WORDS: usize = 100_000;
pub const MIN_MEAN_WORD_LENGTH: f64 = 3.0;
pub const MAX_MEAN_WORD_LENGTH: f64 = 10.0;
pub const MAX_ELLIPSIS_LINE_FRACTION: f64 = 0.3;
pub const MIN_ALPHABETIC_WORD_FRACTION: f64 = 0.8;

/// One Gopher rule; its [`name`](GopherRule::name) is what reports and counters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GopherRule {
    WordCount,
    MeanWordLength,
    EllipsisLines,
    AlphabeticWords,
}

impl GopherRule {
    pub const ALL: [GopherRule; 4] = [
        GopherRule::WordCount,
        GopherRule::MeanWordLength,
        GopherRule::EllipsisLines,
        GopherRule::AlphabeticWords,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GopherRule::WordCount => "word_count",
            GopherRule::MeanWordLength => "mean_word_length",
            GopherRule::EllipsisLines => "ellipsis_lines",
            GopherRule::AlphabeticWords => "alphabetic_words",
        }
    }
}

/// The statistics the rules look at, and the rules the document fails (empty: keep it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GopherReport {
    pub words: usize,
    /// Mean characters per word (0 for a text without words).
    pub mean_word_length: f64,
    pub lines: usize,
    /// Share of non-blank lines ending in "..." or "…" (0 without lines).
    pub ellipsis_line_fraction: f64,
    /// Share of words with at least one alphabetic character (0 without words).
    pub alphabetic_word_fraction: f64,
    pub failed: Vec<GopherRule>,
}

impl GopherReport {
    pub fn keep(&self) -> bool {
        self.failed.is_empty()
    }
}

/// `true` when `text` passes every Gopher rule (the course's adapter).
pub fn gopher_quality_filter(text: &str) -> bool {
    gopher_report(text).keep()
}

/// Measures `text` and lists the rules it fails.
pub fn gopher_report(text: &str) -> GopherReport {
    let (mut words, mut word_chars, mut alphabetic) = (0usize, 0usize, 0usize);
    for word in text.split_whitespace() {
        words += 1;
        let mut has_letter = false;
        for c in word.chars() {
            word_chars += 1;
            has_letter |= c.is_alphabetic();
        }
        alphabetic += usize::from(has_letter);
    }
    let (mut lines, mut ellipsis_lines) = (0usize, 0usize);
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        lines += 1;
        ellipsis_lines += usize::from(line.ends_with("...") || line.ends_with('…'));
    }
    let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let mean_word_length = ratio(word_chars, words);
    let ellipsis_line_fraction = ratio(ellipsis_lines, lines);
    let alphabetic_word_fraction = ratio(alphabetic, words);

    let failed = GopherRule::ALL
        .into_iter()
        .filter(|rule| match rule {
            GopherRule::WordCount => !(MIN_WORDS..=MAX_WORDS).contains(&words),
            GopherRule::MeanWordLength => {
                !(MIN_MEAN_WORD_LENGTH..=MAX_MEAN_WORD_LENGTH).contains(&mean_word_length)
            }
            GopherRule::EllipsisLines => ellipsis_line_fraction > MAX_ELLIPSIS_LINE_FRACTION,
            GopherRule::AlphabeticWords => alphabetic_word_fraction < MIN_ALPHABETIC_WORD_FRACTION,
        })
        .collect();
    GopherReport {
        words,
        mean_word_length,
        lines,
        ellipsis_line_fraction,
        alphabetic_word_fraction,
        failed,
    }
}
