//! Encoding large files in parallel into a flat token file (`numpy.memmap`-readable).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::bpe::{Tokenizer, WordCache};
use crate::error::{BasicsError, Result};

/// Element type of the token file: `U16` when every id fits, else `U32` (little endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDtype {
    U16,
    U32,
}

impl TokenDtype {
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Self::U16
        } else {
            Self::U32
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::U16 => "uint16",
            Self::U32 => "uint32",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EncodeStats {
    pub bytes: u64,
    pub tokens: u64,
    pub seconds: f64,
    pub dtype: TokenDtype,
}

impl EncodeStats {
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }

    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// Bytes of text per parallel encoding task.
const CHUNK_BYTES: usize = 1 << 20;

/// Encodes each `text[a..b]` window on the rayon threads (one word cache per thread).
fn encode_windows(tokenizer: &Tokenizer, text: &str, windows: &[(usize, usize)]) -> Vec<Vec<u32>> {
    windows
        .par_iter()
        .map_init(WordCache::default, |cache, &(a, b)| {
            let mut out = Vec::with_capacity((b - a) / 3);
            tokenizer.encode_into(&text[a..b], cache, &mut out);
            out
        })
        .collect()
}

/// `text` cut at safe boundaries into windows of about [`CHUNK_BYTES`].
fn windows(tokenizer: &Tokenizer, text: &str) -> Vec<(usize, usize)> {
    let cuts = tokenizer.splitter().chunk_cuts(text, CHUNK_BYTES);
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Encodes `text` on all rayon threads; ids are identical to a single `encode`.
pub fn encode_parallel(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    encode_windows(tokenizer, text, &windows(tokenizer, text)).concat()
}

/// Encodes a UTF-8 file into `output` as raw little-endian ids (`uint16` when the vocab fits,
/// else `uint32`), in parallel, writing through a temp file renamed at the end.
pub fn encode_file(
    tokenizer: &Tokenizer,
    input: &Path,
    output: &Path,
    progress: bool,
) -> Result<EncodeStats> {
    let started = Instant::now();
    let file = std::fs::File::open(input).map_err(|e| BasicsError::io(input, e))?;
    // SAFETY: the mapping is read-only and we do not expect the file to change while encoding.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| BasicsError::io(input, e))?;
    let text = std::str::from_utf8(&map).map_err(|e| BasicsError::NotUtf8 {
        path: input.to_path_buf(),
        offset: e.valid_up_to() as u64,
    })?;
    let dtype = TokenDtype::for_vocab(tokenizer.vocab_size());
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| BasicsError::io(dir, e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, tmp.as_file());

    let bar = if progress {
        let b = ProgressBar::new(text.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "encoding {bar:40} {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
            )
            .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let windows = windows(tokenizer, text);
    // Batches keep memory bounded: only one batch of ids is held at a time.
    let batch = rayon::current_num_threads().max(1) * 4;
    let mut tokens = 0u64;
    for group in windows.chunks(batch) {
        let parts = encode_windows(tokenizer, text, group);
        for ids in parts {
            tokens += ids.len() as u64;
            let bytes: Vec<u8> = match dtype {
                TokenDtype::U16 => ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
                TokenDtype::U32 => ids.iter().flat_map(|&i| i.to_le_bytes()).collect(),
            };
            writer
                .write_all(&bytes)
                .map_err(|e| BasicsError::io(output, e))?;
        }
        bar.inc(group.iter().map(|(a, b)| (b - a) as u64).sum());
    }
    writer.flush().map_err(|e| BasicsError::io(output, e))?;
    drop(writer);
    tmp.persist(output)
        .map_err(|e| BasicsError::io(output, e.error))?;
    bar.finish_and_clear();
    Ok(EncodeStats {
        bytes: text.len() as u64,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
        dtype,
    })
}
