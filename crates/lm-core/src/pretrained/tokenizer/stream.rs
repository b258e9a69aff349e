//! Incremental decoding: text is released only once it is complete, so a character whose
//! UTF-8 bytes span several byte-level tokens (emoji, CJK) is never split or mangled.
//!
//! The stream keeps a small window of ids: `prefix..read` were already released, `read..`
//! are pending. Decoding the window and cutting off the text of `prefix..read` gives the new
//! text with the decoder's context (e.g. a leading-space rule) intact. While that text ends
//! in U+FFFD (an incomplete character) it is held back.

use super::TextTokenizer;
use crate::error::Result;

/// Streaming decoder returned by [`TextTokenizer::stream`].
pub struct TokenStream<'a> {
    tokenizer: &'a TextTokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl<'a> TokenStream<'a> {
    pub(super) fn new(tokenizer: &'a TextTokenizer, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds one id; returns the text that became complete (None while a character is
    /// still partial or the token has no text, e.g. a skipped special token).
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let done = self.decode(self.prefix, self.read)?;
        let all = self.decode(self.prefix, self.ids.len())?;
        if all.len() <= done.len() || all.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(None);
        }
        let new = tail_after(&all, &done);
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(Some(new))
    }

    /// Ends the stream: whatever is still pending, incomplete characters as U+FFFD (the
    /// same text [`TextTokenizer::decode`] gives for them). None when nothing is pending.
    pub fn finish(&mut self) -> Result<Option<String>> {
        let done = self.decode(self.prefix, self.read)?;
        let all = self.decode(self.prefix, self.ids.len())?;
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        Ok((all.len() > done.len()).then(|| tail_after(&all, &done)))
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn decode(&self, from: usize, to: usize) -> Result<String> {
        self.tokenizer
            .decode(&self.ids[from..to], self.skip_special_tokens)
    }
}

/// `all` minus its leading `done` part. Decoders that rewrite text at the join (rare) can
/// make `all` not start with `done`; then the part after the common prefix is returned.
fn tail_after(all: &str, done: &str) -> String {
    if let Some(rest) = all.strip_prefix(done) {
        return rest.to_string();
    }
    let common = all
        .char_indices()
        .zip(done.chars())
        .find(|((_, a), b)| a != b)
        .map_or(done.len().min(all.len()), |((i, _), _)| i);
    all.get(common..).unwrap_or_default().to_string()
}
