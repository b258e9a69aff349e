//! A byte-level BPE tokenizer from GGUF vocabulary metadata (`tokenizer.ggml.*`).
//!
//! [`GgufVocab`] is the plain data the keys hold; [`GgufVocab::build`] turns it into a
//! Hugging Face `tokenizers::Tokenizer` plus the ids the engine needs. The GGUF reader only
//! has to fill the struct (`GgufVocab::read`).

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::{AddedToken, Tokenizer};

use super::pretok::PreKind;
use crate::error::{LmError, Result};
use crate::pretrained::gguf::GgufFile;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// The `tokenizer.ggml.*` metadata of a GGUF file, as plain data.
#[derive(Debug, Clone, Default)]
pub struct GgufVocab {
    /// The file the metadata came from (named in errors).
    pub source: PathBuf,
    /// `tokenizer.ggml.model`; only `"gpt2"` (byte-level BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.pre` (empty when absent: llama.cpp's `default`).
    pub pre: String,
    /// `tokenizer.ggml.tokens`, in byte-level form (`Ġ` for a space); index = id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (empty when absent: all normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, each `"left right"`, in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (absent: the pre-tokenizer's llama.cpp default).
    pub add_bos: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// What [`GgufVocab::build`] produces.
pub struct BuiltVocab {
    pub tokenizer: Tokenizer,
    pub bos: Option<u32>,
    /// BOS when encode(add_special_tokens = true) must prepend it.
    pub add_bos: bool,
    pub eos: Option<u32>,
    /// Ids of control tokens (token type 3).
    pub control: Vec<u32>,
}

impl GgufVocab {
    /// Reads the `tokenizer.*` keys of an opened GGUF file.
    pub fn read(file: &GgufFile) -> Result<Self> {
        let source = file.path().to_path_buf();
        let model = file.str("tokenizer.ggml.model")?.to_string();
        let tokens = file.str_array("tokenizer.ggml.tokens")?;
        let tokens = tokens.into_iter().map(str::to_string).collect();
        let merges = match file.get("tokenizer.ggml.merges") {
            Some(_) => file.str_array("tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let token_types = match file.get("tokenizer.ggml.token_type") {
            Some(_) => file.i32_array("tokenizer.ggml.token_type")?,
            None => Vec::new(),
        };
        let pre = match file.get("tokenizer.ggml.pre") {
            Some(_) => file.str("tokenizer.ggml.pre")?.to_string(),
            None => String::new(),
        };
        let chat_template = match file.get("tokenizer.chat_template") {
            Some(_) => Some(file.str("tokenizer.chat_template")?.to_string()),
            None => None,
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match file.get(key) {
                None => Ok(None),
                Some(_) => {
                    let v = file.u64(key)?;
                    u32::try_from(v)
                        .map(Some)
                        .map_err(|_| bad(&source, key, "id exceeds u32"))
                }
            }
        };
        let add_bos = match file.get("tokenizer.ggml.add_bos_token") {
            Some(_) => Some(file.bool("tokenizer.ggml.add_bos_token")?),
            None => None,
        };
        Ok(Self {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            source,
            model,
            pre,
            tokens,
            token_types,
            merges: merges.into_iter().map(str::to_string).collect(),
            add_bos,
            chat_template,
        })
    }

    /// Builds the tokenizer: byte-level BPE over `tokens`/`merges`, the pre-tokenizer named by
    /// `pre`, and control (3) / user-defined (4) tokens as added tokens matched in the text.
    pub fn build(&self) -> Result<BuiltVocab> {
        if self.model != "gpt2" {
            return Err(bad(
                &self.source,
                "tokenizer.ggml.model",
                &format!(
                    "'{}' is not supported (only 'gpt2', byte-level BPE, is)",
                    self.model
                ),
            ));
        }
        let pre = PreKind::from_name(&self.pre).ok_or_else(|| {
            bad(
                &self.source,
                "tokenizer.ggml.pre",
                &format!(
                    "'{}' is not supported (supported: {})",
                    self.pre,
                    PreKind::SUPPORTED
                ),
            )
        })?;
        let n = self.tokens.len();
        if n == 0 {
            return Err(bad(&self.source, "tokenizer.ggml.tokens", "is empty"));
        }
        if !self.token_types.is_empty() && self.token_types.len() != n {
            let reason = format!("has {} entries for {n} tokens", self.token_types.len());
            return Err(bad(&self.source, "tokenizer.ggml.token_type", &reason));
        }
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", self.bos),
            ("tokenizer.ggml.eos_token_id", self.eos),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(bad(
                    &self.source,
                    key,
                    &format!("{id} is not below the vocab size {n}"),
                ));
            }
        }

        let mut tokenizer = Tokenizer::new(self.bpe(pre)?);
        if pre.nfc() {
            tokenizer
                .with_normalizer(Some(NFC))
                .map_err(|e| bad(&self.source, "tokenizer.ggml.pre", &e.to_string()))?;
        }
        let pre_tok = pre
            .build()
            .map_err(|e| bad(&self.source, "tokenizer.ggml.pre", &e.to_string()))?;
        tokenizer.with_pre_tokenizer(Some(pre_tok));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

        let (control, added) = self.added_tokens();
        let added_err = |e: tokenizers::Error| {
            bad(
                &self.source,
                "tokenizer.ggml.token_type",
                &format!("added tokens: {e}"),
            )
        };
        tokenizer.add_tokens(added).map_err(added_err)?;
        let control_ids = control.iter().map(|&(id, _)| id).collect();
        let specials = control
            .iter()
            .map(|(_, s)| AddedToken::from(s.to_string(), true));
        tokenizer.add_special_tokens(specials).map_err(added_err)?;

        let add_bos = self.add_bos.unwrap_or_else(|| pre.default_add_bos());
        if add_bos && self.bos.is_none() {
            let reason = "is true but tokenizer.ggml.bos_token_id is absent";
            return Err(bad(&self.source, "tokenizer.ggml.add_bos_token", reason));
        }
        Ok(BuiltVocab {
            tokenizer,
            bos: self.bos,
            add_bos,
            eos: self.eos,
            control: control_ids,
        })
    }

    /// The BPE model. Every token keeps its GGUF id (a repeated string keeps its first id).
    fn bpe(&self, pre: PreKind) -> Result<BPE> {
        let mut vocab = Vocab::default();
        vocab.reserve(self.tokens.len());
        for (id, tok) in self.tokens.iter().enumerate() {
            vocab.entry(tok.clone()).or_insert(id as u32);
        }
        let mut merges = Vec::with_capacity(self.merges.len());
        for (rank, m) in self.merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').ok_or_else(|| {
                let reason = format!("entry {rank} ({m:?}) is not two tokens separated by a space");
                bad(&self.source, "tokenizer.ggml.merges", &reason)
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre.ignore_merges())
            .build()
            .map_err(|e| bad(&self.source, "tokenizer.ggml.merges", &e.to_string()))
    }

    /// Control tokens (special: skipped by decode(skip_special_tokens)) and user-defined ones
    /// (kept in decoded text, as Hugging Face's `normalized: false, special: false` tokens).
    fn added_tokens(&self) -> (Vec<(u32, &str)>, Vec<AddedToken>) {
        let mut control = Vec::new();
        let mut user = Vec::new();
        for (id, (tok, &ty)) in self.tokens.iter().zip(&self.token_types).enumerate() {
            // An empty string cannot be matched in text (some files pad with them).
            if tok.is_empty() {
                continue;
            }
            match ty {
                TYPE_CONTROL => control.push((id as u32, tok.as_str())),
                TYPE_USER_DEFINED => {
                    user.push(AddedToken::from(tok.clone(), false).normalized(false))
                }
                _ => {}
            }
        }
        (control, user)
    }
}

fn bad(file: &Path, key: &str, reason: &str) -> LmError {
    LmError::BadFile {
        file: file.to_path_buf(),
        reason: format!("`{key}` {reason}"),
    }
}
