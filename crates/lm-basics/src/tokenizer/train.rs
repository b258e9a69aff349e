//! Byte-level BPE training with the course's exact rules.
//!
//! Pre-tokens are counted in parallel over chunks of the input cut at safe boundaries, so
//! memory grows with the number of distinct pre-tokens, not with the corpus. Merges then update
//! pair counts incrementally: an index from each pair to the words holding it, and a
//! max-heap of (count, bytes of the pair) with lazy invalidation, so each merge touches only
//! the words that contain the merged pair.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::pretokenize::{Piece, SpecialSplitter, split_gpt2};
use crate::error::{BasicsError, Result};

/// What training produced: `vocab[id]` = token bytes, and the merges in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeModel {
    pub vocab: Vec<Vec<u8>>,
    pub merges: Vec<(Vec<u8>, Vec<u8>)>,
    pub special_tokens: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub vocab_size: usize,
    pub special_tokens: Vec<String>,
    /// Show a progress bar on stderr (counting and merges).
    pub progress: bool,
    /// Bytes of input read per parallel task.
    pub chunk_bytes: usize,
}

impl TrainOptions {
    pub fn new(vocab_size: usize, special_tokens: &[&str]) -> Self {
        Self {
            vocab_size,
            special_tokens: special_tokens.iter().map(|s| s.to_string()).collect(),
            progress: false,
            chunk_bytes: 4 << 20,
        }
    }
}

/// Counts of distinct pre-tokens.
pub type WordCounts = FxHashMap<Box<[u8]>, u64>;

fn count_chunk<'a>(text: &'a str, specials: &SpecialSplitter) -> FxHashMap<&'a str, u64> {
    let mut counts: FxHashMap<&str, u64> = FxHashMap::default();
    for piece in specials.pieces(text) {
        if let Piece::Text(t) = piece {
            for word in split_gpt2(t) {
                *counts.entry(word).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn merge_counts(into: &mut WordCounts, from: FxHashMap<&str, u64>) {
    for (w, c) in from {
        match into.get_mut(w.as_bytes()) {
            Some(n) => *n += c,
            None => {
                into.insert(w.as_bytes().into(), c);
            }
        }
    }
}

/// Pre-token counts of a reader, streamed in chunks cut at safe boundaries and counted in
/// parallel. `name` labels errors.
pub fn count_pretokens(
    mut input: impl Read,
    name: &Path,
    specials: &SpecialSplitter,
    chunk_bytes: usize,
    progress: &ProgressBar,
) -> Result<WordCounts> {
    let batch_bytes = chunk_bytes * rayon::current_num_threads().max(1) * 2;
    let mut counts = WordCounts::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed: u64 = 0;
    let mut eof = false;
    while !eof || !buf.is_empty() {
        if !eof {
            // `take` + `read_to_end` grows the buffer only as far as the input goes.
            let n = (&mut input)
                .take(batch_bytes as u64)
                .read_to_end(&mut buf)
                .map_err(|e| BasicsError::io(name, e))?;
            eof = n == 0 || n < batch_bytes;
        }
        let valid = match std::str::from_utf8(&buf) {
            Ok(_) => buf.len(),
            // An incomplete char at the end of a non-final buffer is carried over.
            Err(e) if e.error_len().is_none() && !eof => e.valid_up_to(),
            Err(e) => {
                return Err(BasicsError::NotUtf8 {
                    path: name.to_path_buf(),
                    offset: consumed + e.valid_up_to() as u64,
                });
            }
        };
        let text = std::str::from_utf8(&buf[..valid]).expect("validated");
        // Keep clear of a special token that may continue in the next read.
        let safe_limit = text.len().saturating_sub(specials.max_len() + 1);
        let end = match specials.last_safe_cut(text, safe_limit) {
            _ if eof => text.len(),
            Some(c) => c,
            // No safe cut yet: read more, unless the buffer is already huge (text without
            // any whitespace), where an imperfect cut is the lesser evil.
            None if buf.len() < 4 * batch_bytes => continue,
            None => text.len(),
        };
        let cuts = specials.chunk_cuts(&text[..end], chunk_bytes);
        let partials: Vec<FxHashMap<&str, u64>> = cuts
            .par_windows(2)
            .map(|w| count_chunk(&text[w[0]..w[1]], specials))
            .collect();
        for p in partials {
            merge_counts(&mut counts, p);
        }
        consumed += end as u64;
        progress.inc(end as u64);
        buf.drain(..end);
    }
    Ok(counts)
}

/// A heap entry: a pair with the count it had when pushed. Ties in count go to the
/// lexicographically greatest (left bytes, right bytes), as the course requires.
struct Candidate {
    count: u64,
    left: Rc<[u8]>,
    right: Rc<[u8]>,
    pair: (u32, u32),
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> Ordering {
        self.count
            .cmp(&o.count)
            .then_with(|| self.left.cmp(&o.left))
            .then_with(|| self.right.cmp(&o.right))
    }
}

struct Merger {
    tokens: Vec<Rc<[u8]>>,
    words: Vec<Vec<u32>>,
    word_counts: Vec<u64>,
    pair_counts: FxHashMap<(u32, u32), u64>,
    /// Words that contain (or once contained) each pair; checked when used.
    pair_words: FxHashMap<(u32, u32), Vec<u32>>,
    heap: BinaryHeap<Candidate>,
}

impl Merger {
    fn new(tokens: Vec<Rc<[u8]>>, byte_base: u32, counts: WordCounts) -> Self {
        let mut m = Merger {
            tokens,
            words: Vec::with_capacity(counts.len()),
            word_counts: Vec::with_capacity(counts.len()),
            pair_counts: FxHashMap::default(),
            pair_words: FxHashMap::default(),
            heap: BinaryHeap::new(),
        };
        for (word, count) in counts {
            let idx = m.words.len() as u32;
            let symbols: Vec<u32> = word.iter().map(|&b| byte_base + b as u32).collect();
            for p in symbols.windows(2) {
                let pair = (p[0], p[1]);
                *m.pair_counts.entry(pair).or_insert(0) += count;
                m.pair_words.entry(pair).or_default().push(idx);
            }
            m.words.push(symbols);
            m.word_counts.push(count);
        }
        let pairs: Vec<_> = m.pair_counts.iter().map(|(&p, &c)| (p, c)).collect();
        for (pair, count) in pairs {
            m.push(pair, count);
        }
        m
    }

    fn push(&mut self, pair: (u32, u32), count: u64) {
        self.heap.push(Candidate {
            count,
            left: self.tokens[pair.0 as usize].clone(),
            right: self.tokens[pair.1 as usize].clone(),
            pair,
        });
    }

    /// The most frequent pair (ties: greatest bytes), skipping stale heap entries.
    fn best(&mut self) -> Option<(u32, u32)> {
        while let Some(top) = self.heap.pop() {
            if self.pair_counts.get(&top.pair) == Some(&top.count) && top.count > 0 {
                return Some(top.pair);
            }
        }
        None
    }

    /// Replaces every occurrence of `pair` (left to right, non-overlapping) by `new_id`.
    fn merge(&mut self, pair: (u32, u32), new_id: u32) {
        let mut word_ids = self.pair_words.remove(&pair).unwrap_or_default();
        word_ids.sort_unstable();
        word_ids.dedup();
        let mut delta: FxHashMap<(u32, u32), i64> = FxHashMap::default();
        for &w in &word_ids {
            let old = &self.words[w as usize];
            if !old.windows(2).any(|p| (p[0], p[1]) == pair) {
                continue; // stale index entry
            }
            let count = self.word_counts[w as usize] as i64;
            let mut merged = Vec::with_capacity(old.len());
            let mut i = 0;
            while i < old.len() {
                if i + 1 < old.len() && (old[i], old[i + 1]) == pair {
                    merged.push(new_id);
                    i += 2;
                } else {
                    merged.push(old[i]);
                    i += 1;
                }
            }
            for p in old.windows(2) {
                *delta.entry((p[0], p[1])).or_insert(0) -= count;
            }
            for p in merged.windows(2) {
                *delta.entry((p[0], p[1])).or_insert(0) += count;
                if p[0] == new_id || p[1] == new_id {
                    self.pair_words.entry((p[0], p[1])).or_default().push(w);
                }
            }
            self.words[w as usize] = merged;
        }
        let mut changed: FxHashSet<(u32, u32)> = FxHashSet::default();
        for (p, d) in delta {
            if d == 0 {
                continue;
            }
            let entry = self.pair_counts.entry(p).or_insert(0);
            *entry = (*entry as i64 + d) as u64;
            if *entry == 0 {
                self.pair_counts.remove(&p);
            } else {
                changed.insert(p);
            }
        }
        self.pair_counts.remove(&pair);
        for p in changed {
            let c = self.pair_counts[&p];
            self.push(p, c);
        }
    }
}

fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Checks the options and returns the special-token splitter.
fn validate(opts: &TrainOptions) -> Result<SpecialSplitter> {
    let mut seen = FxHashSet::default();
    for t in &opts.special_tokens {
        if t.is_empty() {
            return Err(BasicsError::invalid(
                "special_tokens",
                "a special token is empty",
            ));
        }
        if !seen.insert(t.as_str()) {
            return Err(BasicsError::invalid(
                "special_tokens",
                format!("`{t}` is given twice"),
            ));
        }
    }
    let min = 256 + opts.special_tokens.len();
    if opts.vocab_size < min {
        return Err(BasicsError::invalid(
            "vocab_size",
            format!(
                "{} is below 256 bytes + {} special tokens = {min}",
                opts.vocab_size,
                opts.special_tokens.len()
            ),
        ));
    }
    Ok(SpecialSplitter::new(&opts.special_tokens))
}

/// Trains on pre-token counts (the second half of [`train_bpe`]).
pub fn train_from_counts(counts: WordCounts, opts: &TrainOptions) -> Result<BpeModel> {
    validate(opts)?;
    let mut tokens: Vec<Rc<[u8]>> = opts
        .special_tokens
        .iter()
        .map(|s| Rc::from(s.as_bytes()))
        .collect();
    let byte_base = tokens.len() as u32;
    tokens.extend((0..=255u8).map(|b| Rc::from(&[b][..])));
    let mut merger = Merger::new(tokens, byte_base, counts);
    let target = opts.vocab_size - merger.tokens.len();
    let bar = progress_bar(
        opts.progress,
        target as u64,
        "merging  {bar:40} {pos}/{len} merges, {per_sec}, eta {eta}",
    );
    let mut merges = Vec::with_capacity(target);
    while merger.tokens.len() < opts.vocab_size {
        let Some(pair) = merger.best() else { break };
        let new_id = merger.tokens.len() as u32;
        let (l, r) = (
            merger.tokens[pair.0 as usize].clone(),
            merger.tokens[pair.1 as usize].clone(),
        );
        merger.tokens.push([&l[..], &r[..]].concat().into());
        merges.push((l.to_vec(), r.to_vec()));
        merger.merge(pair, new_id);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(BpeModel {
        vocab: merger.tokens.iter().map(|t| t.to_vec()).collect(),
        merges,
        special_tokens: opts.special_tokens.clone(),
    })
}

/// Trains a byte-level BPE on a UTF-8 text file.
///
/// Initial vocab: the special tokens (ids 0…), then the 256 bytes; the text is split on the
/// special tokens (never merged across, never counted) and pre-tokenized with GPT-2's
/// pattern; then the most frequent adjacent pair is merged until `vocab_size`, ties going to
/// the lexicographically greatest pair. Stops early if no pair is left.
pub fn train_bpe(input: &Path, opts: &TrainOptions) -> Result<BpeModel> {
    let specials = validate(opts)?;
    let file = std::fs::File::open(input).map_err(|e| BasicsError::io(input, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(
        opts.progress,
        len,
        "counting {bar:40} {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
    );
    let started = Instant::now();
    let counts = count_pretokens(file, input, &specials, opts.chunk_bytes.max(1 << 10), &bar)?;
    bar.finish_and_clear();
    if opts.progress {
        eprintln!(
            "counted {} distinct pre-tokens in {:.2?}",
            counts.len(),
            started.elapsed()
        );
    }
    train_from_counts(counts, opts)
}
