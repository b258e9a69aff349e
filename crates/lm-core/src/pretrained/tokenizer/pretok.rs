//! Pre-tokenizer (word-splitting) rules per `tokenizer.ggml.pre`, as llama.cpp defines the
//! names, expressed as Hugging Face `tokenizers` components.
//!
//! The regexes are the facts llama.cpp's `llama-vocab.cpp` and the models' own
//! `tokenizer.json` files state; where both exist the `tokenizer.json` spelling is used (our
//! regex engine is Oniguruma, the same as Hugging Face's, which takes `(?i:…)` as written).

use tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::tokenizer::SplitDelimiterBehavior;

/// GPT-2's word split (also Hugging Face's `ByteLevel(use_regex=true)` built-in).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3: case-insensitive contractions, digits in runs of at most 3.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2: as Llama 3 but every digit on its own.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a vocabulary's text is split and normalised before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreKind {
    /// llama.cpp's `default`: punctuation runs, GPT-2 split, digit runs, then 3-digit groups.
    Default,
    Gpt2,
    Llama3,
    Qwen2,
    /// StarCoder-style (SmolLM): every digit isolated, then the GPT-2 split.
    DigitsThenGpt2,
}

impl PreKind {
    /// The rule for a `tokenizer.ggml.pre` value (an empty one is llama.cpp's `default`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "" | "default" => Self::Default,
            "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "exaone4" => Self::Gpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" => Self::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" => Self::Qwen2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Self::DigitsThenGpt2,
            _ => return None,
        })
    }

    /// The names [`PreKind::from_name`] accepts, for error messages.
    pub const SUPPORTED: &'static str = "default, gpt-2, phi-2, mpt, olmo, jais, exaone4, llama3, \
        llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe, qwen2, deepseek-r1-qwen, megrez, stablelm2, \
        smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b";

    /// llama.cpp matches a whole pre-token against the vocabulary before merging (Llama 3).
    pub fn ignore_merges(self) -> bool {
        self == Self::Llama3
    }

    /// Whether BOS is added when the file does not say (`tokenizer.ggml.add_bos_token`).
    pub fn default_add_bos(self) -> bool {
        self == Self::Llama3
    }

    /// Qwen2's own tokenizer.json NFC-normalises the text first.
    pub fn nfc(self) -> bool {
        self == Self::Qwen2
    }

    /// The pre-tokenizer: regex splits, then the byte-to-unicode mapping of byte-level BPE.
    pub fn build(self) -> tokenizers::Result<PreTokenizerWrapper> {
        let regexes: &[&str] = match self {
            Self::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            Self::Gpt2 => &[GPT2],
            Self::Llama3 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::DigitsThenGpt2 => &[r"\p{N}", GPT2],
        };
        let mut steps = Vec::with_capacity(regexes.len() + 1);
        for re in regexes {
            let split = Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )?;
            steps.push(PreTokenizerWrapper::Split(split));
        }
        steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
            false, false, false,
        )));
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(steps)))
    }
}
