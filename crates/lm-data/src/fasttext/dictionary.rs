//! fastText's dictionary and tokenisation: words and labels, the FNV-1a hash (with its
//! signed-byte quirk), character n-grams hashed into buckets, word n-grams, and the
//! pruned bucket index of quantized (`.ftz`) models.

use super::format::{Args, Reader, Writer};
use crate::Result;
use rustc_hash::FxHashMap;

/// The end-of-sentence token a newline becomes.
pub const EOS: &str = "</s>";
pub const LABEL_PREFIX: &str = "__label__";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Word = 0,
    Label = 1,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub text: String,
    pub count: i64,
    pub kind: EntryKind,
}

/// fastText's 32-bit FNV-1a, where each byte is sign-extended first (its `char` is signed),
/// so bytes ≥ 0x80 hash differently from textbook FNV-1a.
pub fn hash(text: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in text {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// Splits text the way fastText's `readWord` does: runs of ASCII whitespace (and NUL)
/// separate tokens, and every newline is itself the token [`EOS`]. Stops after the first EOS,
/// as fastText reads one line per prediction.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while pos < bytes.len() && is_separator(bytes[pos]) {
            if bytes[pos] == b'\n' {
                pos += 1;
                done = true;
                return Some(EOS);
            }
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && !is_separator(bytes[pos]) {
            pos += 1;
        }
        if start == pos {
            return None;
        }
        // Separators are ASCII, so the slice boundaries are char boundaries.
        Some(&text[start..pos])
    })
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

pub struct Dictionary {
    pub entries: Vec<Entry>,
    pub nwords: usize,
    pub nlabels: usize,
    pub ntokens: i64,
    /// `None`: n-grams are not pruned; `Some(map)`: bucket → compact row (quantized models).
    pub prune_index: Option<FxHashMap<i32, i32>>,
    index: FxHashMap<String, i32>,
    /// Per word: its own row followed by its character n-gram rows.
    subwords: Vec<Vec<i32>>,
    word_ngrams: i32,
    bucket: i32,
    minn: usize,
    maxn: usize,
}

impl Dictionary {
    /// Builds the lookup tables; `entries` must list words first, then labels.
    pub fn new(
        entries: Vec<Entry>,
        ntokens: i64,
        prune_index: Option<FxHashMap<i32, i32>>,
        args: &Args,
    ) -> Self {
        let nwords = entries.iter().filter(|e| e.kind == EntryKind::Word).count();
        let nlabels = entries.len() - nwords;
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.text.clone(), i as i32))
            .collect();
        let mut dict = Self {
            entries,
            nwords,
            nlabels,
            ntokens,
            prune_index,
            index,
            subwords: Vec::new(),
            word_ngrams: args.word_ngrams,
            bucket: args.bucket,
            minn: args.minn as usize,
            maxn: args.maxn as usize,
        };
        dict.subwords = (0..dict.entries.len())
            .map(|i| {
                let mut rows = vec![i as i32];
                if dict.entries[i].text != EOS {
                    dict.char_ngrams(&dict.entries[i].text, &mut rows);
                }
                rows
            })
            .collect();
        dict
    }

    pub fn read(r: &mut Reader, args: &Args) -> Result<Self> {
        let size = r.i32("dictionary.size")?;
        let nwords = r.i32("dictionary.nwords")?;
        let nlabels = r.i32("dictionary.nlabels")?;
        let ntokens = r.i64("dictionary.ntokens")?;
        let prune_size = r.i64("dictionary.pruneidx_size")?;
        if size < 0 || nwords < 0 || nlabels < 0 || nwords as i64 + nlabels as i64 != size as i64 {
            return Err(r.error(
                "dictionary",
                format!("inconsistent sizes: size {size}, nwords {nwords}, nlabels {nlabels}"),
            ));
        }
        let mut entries = Vec::with_capacity(r.count(size as i64, 10, "dictionary.size")?);
        for i in 0..size {
            let text = r.cstring("dictionary entry")?;
            let count = r.i64("dictionary entry count")?;
            let kind = match r.u8("dictionary entry type")? {
                0 => EntryKind::Word,
                1 => EntryKind::Label,
                v => return Err(r.error("dictionary entry type", format!("entry {i}: {v}"))),
            };
            let expected = if i < nwords {
                EntryKind::Word
            } else {
                EntryKind::Label
            };
            if kind != expected {
                return Err(r.error("dictionary", format!("entry {i} ({text:?}) out of order")));
            }
            entries.push(Entry { text, count, kind });
        }
        let prune_index = if prune_size >= 0 {
            let n = r.count(prune_size, 8, "dictionary.pruneidx")?;
            let mut map = FxHashMap::default();
            map.reserve(n);
            for _ in 0..n {
                let from = r.i32("dictionary.pruneidx key")?;
                let to = r.i32("dictionary.pruneidx value")?;
                // Targets index the n-gram rows that follow the words in the input matrix.
                if to < 0 || to as usize >= n {
                    return Err(r.error(
                        "dictionary.pruneidx value",
                        format!("row {to} outside 0..{n}"),
                    ));
                }
                map.insert(from, to);
            }
            Some(map)
        } else {
            None
        };
        Ok(Self::new(entries, ntokens, prune_index, args))
    }

    pub fn write(&self, w: &mut Writer) {
        w.i32(self.entries.len() as i32);
        w.i32(self.nwords as i32);
        w.i32(self.nlabels as i32);
        w.i64(self.ntokens);
        w.i64(self.prune_index.as_ref().map_or(-1, |m| m.len() as i64));
        for e in &self.entries {
            w.cstring(&e.text);
            w.i64(e.count);
            w.u8(e.kind as u8);
        }
        if let Some(map) = &self.prune_index {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort();
            for (k, v) in pairs {
                w.i32(*k);
                w.i32(*v);
            }
        }
    }

    /// Rows in the input matrix this dictionary addresses.
    pub fn input_rows(&self) -> usize {
        self.nwords
            + match &self.prune_index {
                Some(map) => map.len(),
                None => self.bucket as usize,
            }
    }

    pub fn id(&self, text: &str) -> Option<i32> {
        self.index.get(text).copied()
    }

    pub fn label(&self, i: usize) -> &str {
        &self.entries[self.nwords + i].text
    }

    pub fn label_counts(&self) -> Vec<i64> {
        self.entries[self.nwords..]
            .iter()
            .map(|e| e.count)
            .collect()
    }

    /// Maps a bucket to its input row, following the prune index if there is one.
    fn push_bucket(&self, rows: &mut Vec<i32>, bucket: i32) {
        let row = match &self.prune_index {
            None => bucket,
            Some(map) => match map.get(&bucket) {
                Some(&r) => r,
                None => return,
            },
        };
        rows.push(self.nwords as i32 + row);
    }

    /// Character n-grams of `<word>` with `minn..=maxn` UTF-8 characters, hashed into buckets;
    /// single characters at the boundaries (`<`, `>`) are skipped, as fastText does.
    fn char_ngrams(&self, word: &str, rows: &mut Vec<i32>) {
        if self.maxn == 0 || self.bucket <= 0 {
            return;
        }
        let mut wrapped = Vec::with_capacity(word.len() + 2);
        wrapped.push(b'<');
        wrapped.extend_from_slice(word.as_bytes());
        wrapped.push(b'>');
        let w = &wrapped;
        let continuation = |b: u8| b & 0xC0 == 0x80;
        for i in 0..w.len() {
            if continuation(w[i]) {
                continue;
            }
            let mut j = i;
            let mut n = 1;
            while j < w.len() && n <= self.maxn {
                j += 1;
                while j < w.len() && continuation(w[j]) {
                    j += 1;
                }
                if n >= self.minn && !(n == 1 && (i == 0 || j == w.len())) {
                    let bucket = hash(&w[i..j]) % self.bucket as u32;
                    self.push_bucket(rows, bucket as i32);
                }
                n += 1;
            }
        }
    }

    /// The input rows of one line of text (fastText's supervised `getLine`): known words and
    /// their subwords, character n-grams of unknown words, then word n-grams. Labels written
    /// in the text (`__label__x`) are not features; they are returned separately.
    pub fn line(&self, text: &str, rows: &mut Vec<i32>, labels: &mut Vec<i32>) {
        rows.clear();
        labels.clear();
        let mut hashes: Vec<i32> = Vec::new();
        for token in tokens(text) {
            let h = hash(token.as_bytes());
            let id = self.id(token);
            let is_label = match id {
                Some(i) => self.entries[i as usize].kind == EntryKind::Label,
                None => token.starts_with(LABEL_PREFIX),
            };
            if is_label {
                if let Some(i) = id {
                    labels.push(i - self.nwords as i32);
                }
                continue;
            }
            match id {
                Some(i) => rows.extend_from_slice(&self.subwords[i as usize]),
                None if token != EOS => self.char_ngrams(token, rows),
                None => {}
            }
            hashes.push(h as i32);
        }
        self.add_word_ngrams(rows, &hashes);
    }

    /// Word n-grams 2..=wordNgrams, hashed as fastText does: each word hash is sign-extended
    /// to 64 bits before mixing.
    fn add_word_ngrams(&self, rows: &mut Vec<i32>, hashes: &[i32]) {
        if self.bucket <= 0 {
            return;
        }
        let n = self.word_ngrams.max(1) as usize;
        for i in 0..hashes.len() {
            let mut h = hashes[i] as i64 as u64;
            for &next in hashes.iter().take((i + n).min(hashes.len())).skip(i + 1) {
                h = h.wrapping_mul(116_049_371).wrapping_add(next as i64 as u64);
                self.push_bucket(rows, (h % self.bucket as u64) as i32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_sign_extends_bytes() {
        // Plain ASCII agrees with textbook FNV-1a 32.
        assert_eq!(hash(b"a"), 0xe40c292c);
        // A byte ≥ 0x80 is XORed as 0xFFFFFFxx, unlike textbook FNV-1a (0x0c0b6a9b-ish).
        let textbook = (2_166_136_261u32 ^ 0xe9).wrapping_mul(16_777_619);
        assert_ne!(hash(&[0xe9]), textbook);
        assert_eq!(
            hash(&[0xe9]),
            (2_166_136_261u32 ^ 0xffff_ffe9).wrapping_mul(16_777_619)
        );
    }

    #[test]
    fn tokens_follow_read_word() {
        let t: Vec<_> = tokens("  a\tb  c \n d").collect();
        assert_eq!(t, ["a", "b", "c", EOS]);
        let t: Vec<_> = tokens("x").collect();
        assert_eq!(t, ["x"]);
    }
}
