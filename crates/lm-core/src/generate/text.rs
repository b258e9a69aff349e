//! Generated text: incremental detokenization and stop-string search.

/// Turns token ids back into text; the engine uses it only for `text` and stop strings.
pub trait Detokenizer: Sync {
    fn decode(&self, ids: &[u32]) -> String;
}

impl<F: Fn(&[u32]) -> String + Sync> Detokenizer for F {
    fn decode(&self, ids: &[u32]) -> String {
        self(ids)
    }
}

/// The text of one row's generated tokens, grown a few tokens at a time (vLLM's scheme).
///
/// Decoding only a short window keeps a step O(1) in the length generated so far. The
/// window starts a few tokens back (`prefix`) so a tokenizer that treats a sequence's first
/// token specially (e.g. SentencePiece's leading space) sees context, and new text is
/// accepted only when it does not end in U+FFFD, i.e. inside a UTF-8 character whose bytes
/// span several byte-level tokens. This assumes that decoding more tokens only appends
/// (true for byte-level BPE); `finish` forces out whatever is pending.
#[derive(Debug, Default, Clone)]
pub struct IncrementalText {
    text: String,
    /// Tokens `prefix..read` are already in `text`; they give the next window its context.
    prefix: usize,
    read: usize,
}

impl IncrementalText {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Decodes what `tokens` (all generated tokens so far) added since the last call and
    /// returns the byte length `text` had before.
    pub fn update(&mut self, detok: &dyn Detokenizer, tokens: &[u32]) -> usize {
        self.advance(detok, tokens, false)
    }

    /// Like `update`, but also takes an incomplete trailing character.
    pub fn finish(&mut self, detok: &dyn Detokenizer, tokens: &[u32]) -> usize {
        self.advance(detok, tokens, true)
    }

    fn advance(&mut self, detok: &dyn Detokenizer, tokens: &[u32], force: bool) -> usize {
        let before = self.text.len();
        if tokens.len() <= self.read {
            return before;
        }
        let known = detok.decode(&tokens[self.prefix..self.read]);
        let full = detok.decode(&tokens[self.prefix..]);
        if full.len() <= known.len() || (!force && full.ends_with('\u{FFFD}')) {
            return before;
        }
        // A tokenizer that rewrites the known part breaks the assumption; start at the
        // next character rather than panic on a split one.
        let mut start = known.len();
        while !full.is_char_boundary(start) {
            start += 1;
        }
        self.text.push_str(&full[start..]);
        self.prefix = self.read;
        self.read = tokens.len();
        before
    }

    /// Drops everything from byte `at` on (a stop string's start).
    pub fn truncate(&mut self, at: usize) {
        self.text.truncate(at);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// The byte offset of the earliest stop string in `text` that ends after byte `old_len`
/// (earlier text was searched before), with the index of that string. Ties at the same
/// offset go to the earlier string in `stops`.
pub fn find_stop(text: &str, old_len: usize, stops: &[String]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for (s, stop) in stops.iter().enumerate() {
        let mut from = (old_len + 1).saturating_sub(stop.len()).min(text.len());
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if let Some(pos) = text[from..].find(stop.as_str()).map(|p| p + from)
            && best.is_none_or(|(b, _)| pos < b)
        {
            best = Some((pos, s));
        }
    }
    best
}

/// The largest byte offset `<= at` that is a char boundary of `text`.
pub fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-level vocabulary: token `i` is byte `i`, so "é" is two tokens.
    fn bytes(ids: &[u32]) -> String {
        String::from_utf8_lossy(&ids.iter().map(|&i| i as u8).collect::<Vec<_>>()).into_owned()
    }

    #[test]
    fn incremental_text_equals_full_decode_across_split_characters() {
        let s = "né à 10€, ok";
        let ids: Vec<u32> = s.bytes().map(u32::from).collect();
        let mut inc = IncrementalText::default();
        for n in 1..=ids.len() {
            inc.update(&bytes, &ids[..n]);
            assert!(!inc.text().contains('\u{FFFD}'), "{:?}", inc.text());
            assert!(s.starts_with(inc.text()));
        }
        assert_eq!(inc.text(), s);
    }

    #[test]
    fn finish_forces_out_an_incomplete_character() {
        let ids: Vec<u32> = "aé".bytes().map(u32::from).collect();
        let mut inc = IncrementalText::default();
        inc.update(&bytes, &ids[..1]);
        inc.update(&bytes, &ids[..2]);
        assert_eq!(inc.text(), "a", "half of é waits for its second byte");
        inc.finish(&bytes, &ids[..2]);
        assert_eq!(inc.text(), "a\u{FFFD}");
    }

    #[test]
    fn find_stop_takes_the_earliest_match_ending_in_new_text() {
        let stops = vec!["END".to_string(), "D!".to_string(), "xx".to_string()];
        assert_eq!(find_stop("abcEND!", 4, &stops), Some((3, 0)));
        // "xx" at 0 ended in text searched before, so it is not reported again.
        assert_eq!(find_stop("xxab", 3, &stops), None);
        assert_eq!(find_stop("é€END", 0, &stops), Some((5, 0)));
    }

    #[test]
    fn floor_boundary_never_splits_a_character() {
        assert_eq!(floor_boundary("aé", 2), 1);
        assert_eq!(floor_boundary("aé", 9), 3);
    }
}
