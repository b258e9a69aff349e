//! Encoding and decoding with a trained byte-level BPE.

use rustc_hash::FxHashMap;

use super::pretokenize::{Piece, SpecialSplitter, split_gpt2};
use super::train::BpeModel;
use crate::error::{BasicsError, Result};

/// A byte-level BPE tokenizer: GPT-2 pre-tokenization, merges applied in rank order, special
/// tokens matched longest first and never split.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// id → bytes (`None` for ids the vocab skips).
    id_to_bytes: Vec<Option<Box<[u8]>>>,
    bytes_to_id: FxHashMap<Box<[u8]>, u32>,
    byte_ids: [u32; 256],
    /// (left id, right id) → (rank, merged id).
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    specials: SpecialSplitter,
    special_ids: Vec<u32>,
}

/// Pre-token → ids memo for one encoding job (words repeat a lot in natural text).
pub type WordCache = FxHashMap<Box<str>, Box<[u32]>>;

impl Tokenizer {
    /// Builds a tokenizer from `(id, bytes)` pairs, merges in rank order and special tokens
    /// (a special token missing from the vocab gets the next free id, as the course does).
    pub fn new(
        vocab: impl IntoIterator<Item = (u32, Vec<u8>)>,
        merges: &[(Vec<u8>, Vec<u8>)],
        special_tokens: &[String],
    ) -> Result<Self> {
        let mut bytes_to_id: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
        let mut id_to_bytes: Vec<Option<Box<[u8]>>> = Vec::new();
        for (id, bytes) in vocab {
            let slot = id as usize;
            if id_to_bytes.len() <= slot {
                id_to_bytes.resize(slot + 1, None);
            }
            if id_to_bytes[slot].is_some() {
                return Err(BasicsError::invalid(
                    "vocab",
                    format!("id {id} appears twice"),
                ));
            }
            bytes_to_id
                .entry(bytes.clone().into_boxed_slice())
                .or_insert(id);
            id_to_bytes[slot] = Some(bytes.into_boxed_slice());
        }
        let mut byte_ids = [0u32; 256];
        for b in 0..=255u8 {
            byte_ids[b as usize] = *bytes_to_id.get(&[b][..]).ok_or_else(|| {
                BasicsError::invalid("vocab", format!("byte {b:#04x} has no token"))
            })?;
        }
        let mut merge_map = FxHashMap::default();
        for (rank, (l, r)) in merges.iter().enumerate() {
            let id = |bytes: &[u8]| bytes_to_id.get(bytes).copied();
            let merged = [&l[..], &r[..]].concat();
            match (id(l), id(r), id(&merged)) {
                (Some(a), Some(b), Some(c)) => {
                    merge_map.entry((a, b)).or_insert((rank as u32, c));
                }
                _ => {
                    return Err(BasicsError::invalid(
                        "merges",
                        format!(
                            "merge {rank} ({:?} + {:?}) uses or makes a token missing from the vocab",
                            String::from_utf8_lossy(l),
                            String::from_utf8_lossy(r)
                        ),
                    ));
                }
            }
        }
        let mut special_ids = Vec::new();
        for s in special_tokens {
            let id = match bytes_to_id.get(s.as_bytes()) {
                Some(&id) => id,
                None => {
                    let id = id_to_bytes.len() as u32;
                    id_to_bytes.push(Some(s.as_bytes().into()));
                    bytes_to_id.insert(s.as_bytes().into(), id);
                    id
                }
            };
            special_ids.push(id);
        }
        Ok(Self {
            id_to_bytes,
            bytes_to_id,
            byte_ids,
            merges: merge_map,
            specials: SpecialSplitter::new(special_tokens),
            special_ids,
        })
    }

    /// From GPT-2 style `vocab.json` and `merges.txt` (see [`super::files`]).
    pub fn from_files(
        vocab: &std::path::Path,
        merges: &std::path::Path,
        special_tokens: &[String],
    ) -> Result<Self> {
        super::files::from_files(vocab, merges, special_tokens)
    }

    /// The tokenizer of a trained model.
    pub fn from_model(model: &BpeModel) -> Result<Self> {
        let vocab = model
            .vocab
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32, b.clone()));
        Self::new(vocab, &model.merges, &model.special_tokens)
    }

    /// One past the largest id.
    pub fn vocab_size(&self) -> usize {
        self.id_to_bytes.len()
    }

    pub fn special_tokens(&self) -> &[String] {
        &self.specials.tokens
    }

    /// The id of a token's exact bytes, if it is in the vocab.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.bytes_to_id.get(bytes).copied()
    }

    pub(crate) fn splitter(&self) -> &SpecialSplitter {
        &self.specials
    }

    /// Applies the merges to one pre-token, lowest rank first.
    fn bpe_word(&self, word: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = word.bytes().map(|b| self.byte_ids[b as usize]).collect();
        while symbols.len() > 1 {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len() - 1 {
                if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        out.extend_from_slice(&symbols);
    }

    /// Encodes ordinary text (no special-token handling) with a memo of seen words.
    fn encode_plain(&self, text: &str, cache: &mut WordCache, out: &mut Vec<u32>) {
        for word in split_gpt2(text) {
            if let Some(ids) = cache.get(word) {
                out.extend_from_slice(ids);
                continue;
            }
            let start = out.len();
            self.bpe_word(word, out);
            cache.insert(word.into(), out[start..].into());
        }
    }

    /// Encodes `text`, appending ids to `out`, reusing `cache` across calls.
    pub fn encode_into(&self, text: &str, cache: &mut WordCache, out: &mut Vec<u32>) {
        for piece in self.specials.pieces(text) {
            match piece {
                Piece::Text(t) => self.encode_plain(t, cache, out),
                Piece::Special(i) => out.push(self.special_ids[i]),
            }
        }
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, &mut WordCache::default(), &mut out);
        out
    }

    /// The bytes of `ids`; an unknown id is an error naming it.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes = self
                .id_to_bytes
                .get(id as usize)
                .and_then(Option::as_ref)
                .ok_or_else(|| {
                    BasicsError::invalid("ids", format!("token id {id} is not in the vocab"))
                })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Decodes to text; invalid UTF-8 becomes U+FFFD (Python's `errors="replace"`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// Streams the encoding of text pieces (e.g. lines of a file): ids are identical to
    /// encoding the concatenation, and memory stays bounded by the longest stretch without a
    /// safe cut point (see [`SpecialSplitter::last_safe_cut`]).
    pub fn encode_iterable<I, S>(&self, pieces: I) -> EncodeIterable<'_, I::IntoIter>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        EncodeIterable {
            tokenizer: self,
            input: pieces.into_iter(),
            pending: String::new(),
            ready: Vec::new(),
            next: 0,
            cache: WordCache::default(),
            done: false,
        }
    }
}

/// Iterator returned by [`Tokenizer::encode_iterable`].
pub struct EncodeIterable<'t, I> {
    tokenizer: &'t Tokenizer,
    input: I,
    pending: String,
    ready: Vec<u32>,
    next: usize,
    cache: WordCache,
    done: bool,
}

impl<I, S> Iterator for EncodeIterable<'_, I>
where
    I: Iterator<Item = S>,
    S: AsRef<str>,
{
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.next == self.ready.len() {
            if self.done {
                return None;
            }
            self.ready.clear();
            self.next = 0;
            match self.input.next() {
                Some(piece) => {
                    self.pending.push_str(piece.as_ref());
                    let splitter = self.tokenizer.splitter();
                    let limit = self.pending.len().saturating_sub(splitter.max_len() + 1);
                    if let Some(cut) = splitter.last_safe_cut(&self.pending, limit) {
                        self.tokenizer.encode_into(
                            &self.pending[..cut],
                            &mut self.cache,
                            &mut self.ready,
                        );
                        self.pending.drain(..cut);
                    }
                    if self.cache.len() > 1 << 20 {
                        self.cache.clear(); // bound memory on huge vocabularies of words
                    }
                }
                None => {
                    let rest = std::mem::take(&mut self.pending);
                    self.tokenizer
                        .encode_into(&rest, &mut self.cache, &mut self.ready);
                    self.done = true;
                }
            }
        }
        self.next += 1;
        Some(self.ready[self.next - 1])
    }
}
