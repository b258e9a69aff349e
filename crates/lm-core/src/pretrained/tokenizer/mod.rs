//! The text side of a pretrained model: a Hugging Face `tokenizers` tokenizer loaded from a
//! `tokenizer.json` or built from GGUF metadata, with the model's special ids and chat
//! template, and incremental decoding for streaming generation.
//!
//! End-of-generation ids ([`TextTokenizer::eos_token_ids`]): the file's own eos id
//! (`tokenizer.ggml.eos_token_id`, or `eos_token` of tokenizer_config.json), plus every one
//! of [`END_MARKERS`] that the vocabulary holds as a *special* (control) token. Chat models
//! end a turn with `<|im_end|>` / `<|eot_id|>` and a document with `<|endoftext|>` /
//! `<|end_of_text|>`, whichever the file names as eos; stopping on all of them is what their
//! generation configs do (Qwen2.5: im_end + endoftext; Llama 3.1: end_of_text + eom + eot).

mod config_json;
mod gguf_vocab;
mod pretok;
mod stream;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{LmError, Result};
use crate::pretrained::gguf::GgufFile;

pub use gguf_vocab::GgufVocab;
pub use pretok::PreKind;
pub use stream::TokenStream;

/// Special tokens that end generation when the vocabulary has them as special tokens.
pub const END_MARKERS: [&str; 5] = [
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
];

/// A pretrained model's tokenizer.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Where it was loaded from (named in errors).
    source: PathBuf,
    bos: Option<u32>,
    /// BOS to prepend on encode(add_special_tokens = true) (GGUF `add_bos_token`; a
    /// tokenizer.json does this through its own post-processor instead).
    prepend_bos: Option<u32>,
    eos: Vec<u32>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads a Hugging Face `tokenizer.json`; bos/eos and the chat template come from the
    /// `tokenizer_config.json` beside it when present (else `chat_template.jinja` beside it).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| LmError::io(path, e))?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| LmError::BadFile {
            file: path.to_path_buf(),
            reason: format!("not a tokenizer.json: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = config_json::TokenizerConfig::load_beside(dir)?;
        let special: Vec<u32> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        let lookup = |name: &Option<String>| name.as_deref().and_then(|s| inner.token_to_id(s));
        let bos = lookup(&config.bos_token);
        let eos = lookup(&config.eos_token);
        let eos = end_ids(&inner, eos, &special);
        Ok(Self {
            inner,
            source: path.to_path_buf(),
            bos,
            prepend_bos: None,
            eos,
            chat_template: config.chat_template,
        })
    }

    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` keys (see [`GgufVocab`]).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        Self::from_gguf_vocab(&GgufVocab::read(file)?)
    }

    /// Builds the tokenizer from GGUF vocabulary data.
    pub fn from_gguf_vocab(vocab: &GgufVocab) -> Result<Self> {
        let built = vocab.build()?;
        let eos = end_ids(&built.tokenizer, built.eos, &built.control);
        Ok(Self {
            inner: built.tokenizer,
            source: vocab.source.clone(),
            bos: built.bos,
            prepend_bos: built.bos.filter(|_| built.add_bos),
            eos,
            chat_template: vocab.chat_template.clone(),
        })
    }

    /// Token ids of `text`. Special tokens written in the text (e.g. `<|im_start|>`) become
    /// their ids; `add_special_tokens` adds what the model adds (BOS for Llama 3 style).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| self.err(format!("encode failed: {e}")))?;
        let ids = enc.get_ids();
        Ok(match self.prepend_bos.filter(|_| add_special_tokens) {
            Some(bos) => std::iter::once(bos).chain(ids.iter().copied()).collect(),
            None => ids.to_vec(),
        })
    }

    /// The text of `ids` (invalid UTF-8 from partial byte tokens becomes U+FFFD).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(self.err(format!(
                "token id {bad} is out of range (vocab size {vocab})"
            )));
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.err(format!("decode failed: {e}")))
    }

    /// An incremental decoder: push ids one at a time, get text as it becomes complete.
    pub fn stream(&self, skip_special_tokens: bool) -> TokenStream<'_> {
        TokenStream::new(self, skip_special_tokens)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids that end generation (see the module docs for the rule).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos.clone()
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// The id of token `s` (its vocabulary form, e.g. `Ġthe` for " the", or `<|im_end|>`).
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// The token string of `id` (vocabulary form).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The Jinja chat template the file carries.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn err(&self, reason: String) -> LmError {
        LmError::BadFile {
            file: self.source.clone(),
            reason,
        }
    }
}

/// `eos` first, then each present special end marker, without repeats.
fn end_ids(tok: &Tokenizer, eos: Option<u32>, special: &[u32]) -> Vec<u32> {
    let mut ids: Vec<u32> = eos.into_iter().collect();
    for marker in END_MARKERS {
        if let Some(id) = tok.token_to_id(marker)
            && special.contains(&id)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}
