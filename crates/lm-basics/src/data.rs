//! Token files (flat little-endian `uint16`/`uint32`, as `lm tokenizer encode` writes) and
//! batches drawn from them.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::Rng;

use crate::error::{BasicsError, Result};
use crate::tokenizer::encode_file::TokenDtype;

/// A memory-mapped token file.
pub struct TokenFile {
    path: PathBuf,
    map: memmap2::Mmap,
    dtype: TokenDtype,
}

impl TokenFile {
    pub fn open(path: &Path, dtype: TokenDtype) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| BasicsError::io(path, e))?;
        // SAFETY: read-only mapping of a file we do not modify while training.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| BasicsError::io(path, e))?;
        if map.len() % dtype.bytes() != 0 {
            return Err(BasicsError::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "{} bytes is not a whole number of {} tokens",
                    map.len(),
                    dtype.name()
                ),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            dtype,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.map.len() / self.dtype.bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        let b = &self.map[i * self.dtype.bytes()..];
        match self.dtype {
            TokenDtype::U16 => u16::from_le_bytes([b[0], b[1]]) as u32,
            TokenDtype::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }

    /// Checks that every id is below `vocab_size` (an out-of-range id would crash deep in the
    /// embedding otherwise).
    pub fn check_vocab(&self, vocab_size: usize) -> Result<()> {
        if let Some(i) = (0..self.len()).find(|&i| self.get(i) as usize >= vocab_size) {
            return Err(BasicsError::BadFile {
                path: self.path.clone(),
                reason: format!("token {i} has id {} ≥ vocab_size {vocab_size}", self.get(i)),
            });
        }
        Ok(())
    }

    fn window(&self, start: usize, len: usize, out: &mut Vec<i64>) {
        out.extend((start..start + len).map(|i| self.get(i) as i64));
    }
}

/// `batch` random windows: inputs `x[b] = tokens[s..s+m]`, targets `y[b] = tokens[s+1..s+m+1]`,
/// starts `s` uniform over `[0, n − m − 1]` (the course's `get_batch`).
pub fn get_batch<B: Backend>(
    tokens: &TokenFile,
    batch: usize,
    context: usize,
    rng: &mut impl Rng,
    device: &B::Device,
) -> Result<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)> {
    let n = tokens.len();
    if n < context + 1 {
        return Err(BasicsError::BadFile {
            path: tokens.path.clone(),
            reason: format!("{n} tokens is too short for context length {context}"),
        });
    }
    let (mut x, mut y) = (
        Vec::with_capacity(batch * context),
        Vec::with_capacity(batch * context),
    );
    for _ in 0..batch {
        let s = rng.random_range(0..=n - context - 1);
        tokens.window(s, context, &mut x);
        tokens.window(s + 1, context, &mut y);
    }
    Ok((
        to_tensor(x, batch, context, device),
        to_tensor(y, batch, context, device),
    ))
}

fn to_tensor<B: Backend>(
    v: Vec<i64>,
    batch: usize,
    context: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(v, [batch, context]), device)
}

/// Non-overlapping windows covering the file in order, for evaluation: each item is a batch of
/// up to `batch` windows of `context` tokens (the tail shorter than a window is dropped).
pub fn sequential_batches<'a, B: Backend>(
    tokens: &'a TokenFile,
    batch: usize,
    context: usize,
    device: &'a B::Device,
) -> impl Iterator<Item = (Tensor<B, 2, Int>, Tensor<B, 2, Int>)> + 'a {
    let windows = tokens.len().saturating_sub(1) / context.max(1);
    (0..windows).step_by(batch.max(1)).map(move |first| {
        let rows = batch.min(windows - first);
        let (mut x, mut y) = (
            Vec::with_capacity(rows * context),
            Vec::with_capacity(rows * context),
        );
        for w in first..first + rows {
            tokens.window(w * context, context, &mut x);
            tokens.window(w * context + 1, context, &mut y);
        }
        (
            to_tensor(x, rows, context, device),
            to_tensor(y, rows, context, device),
        )
    })
}
