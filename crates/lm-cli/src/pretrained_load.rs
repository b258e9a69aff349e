//! Loading a pretrained model and its tokenizer from a Hugging Face directory or a GGUF
//! file: what `lm generate` and `lm align` share.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use lm_core::pretrained::gguf::GgufFile;
use lm_core::pretrained::tokenizer::TextTokenizer;
use lm_core::pretrained::{Decoder, gguf_model};

pub struct Pretrained<B: Backend> {
    pub model: Decoder<B>,
    pub tokenizer: TextTokenizer,
    /// The tokenizer.json it was read from (none when it came from GGUF metadata).
    pub tokenizer_file: Option<PathBuf>,
}

/// Loads `path` (a `.gguf` file, else a Hugging Face directory); `tokenizer` overrides the
/// model's own tokenizer with a tokenizer.json. `pack`: a GGUF model's projections also
/// keep their quantised blocks for CPU decoding (inference only; see
/// `Decoder::load_with`).
pub fn load_pretrained<B: Backend>(
    path: &Path,
    tokenizer: Option<&Path>,
    device: &B::Device,
    pack: bool,
) -> anyhow::Result<Pretrained<B>> {
    let is_gguf = path.extension().is_some_and(|e| e == "gguf");
    let model = if is_gguf {
        gguf_model::load_with::<B>(path, device, pack)?
    } else {
        Decoder::<B>::from_hf_dir(path, device)?
    };
    let tokenizer_file = match tokenizer {
        Some(t) => Some(t.to_path_buf()),
        None if is_gguf => None,
        None => Some(path.join("tokenizer.json")),
    };
    let tokenizer = match &tokenizer_file {
        Some(json) => TextTokenizer::from_file(json)?,
        None => TextTokenizer::from_gguf(&GgufFile::open(path)?)?,
    };
    Ok(Pretrained {
        model,
        tokenizer,
        tokenizer_file,
    })
}
