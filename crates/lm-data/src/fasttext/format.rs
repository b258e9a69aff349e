//! Little-endian binary reading/writing for fastText's `.bin`/`.ftz` layout, and the model
//! arguments block that follows the header.

use crate::{DataError, Result};
use std::path::{Path, PathBuf};

pub const MAGIC: i32 = 793_712_314;
pub const VERSION: i32 = 12;

/// A cursor over the bytes of a model file; every error names the file and the field.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: PathBuf,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], path: &Path) -> Self {
        Self {
            bytes,
            pos: 0,
            path: path.to_path_buf(),
        }
    }

    pub fn error(&self, field: &str, reason: impl std::fmt::Display) -> DataError {
        DataError::bad_file(
            &self.path,
            format!("fastText model, {field} at byte {}: {reason}", self.pos),
        )
    }

    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.error(
                field,
                format!(
                    "file ends early (needs {n} more bytes, has {})",
                    self.bytes.len() - self.pos
                ),
            )),
        }
    }

    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }
    pub fn bool(&mut self, field: &str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.error(field, format!("expected a boolean byte, found {v}"))),
        }
    }
    pub fn i32(&mut self, field: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4, field)?.try_into().unwrap()))
    }
    pub fn i64(&mut self, field: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8, field)?.try_into().unwrap()))
    }
    pub fn f64(&mut self, field: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8, field)?.try_into().unwrap()))
    }
    /// A non-negative size that must fit in what is left of the file (`elem` bytes each).
    pub fn count(&mut self, value: i64, elem: usize, field: &str) -> Result<usize> {
        let left = (self.bytes.len() - self.pos) as u128;
        if value < 0 || (value as u128) * (elem as u128) > left {
            return Err(self.error(
                field,
                format!("size {value} does not fit: file ends early ({left} bytes left)"),
            ));
        }
        Ok(value as usize)
    }
    pub fn f32s(&mut self, n: usize, field: &str) -> Result<Vec<f32>> {
        let raw = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.error(field, "too large"))?,
            field,
        )?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    /// A NUL-terminated string (dictionary entries).
    pub fn cstring(&mut self, field: &str) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let len = memchr_zero(rest).ok_or_else(|| self.error(field, "unterminated string"))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.pos += len + 1;
        Ok(s)
    }
    pub fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn memchr_zero(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == 0)
}

/// Appends little-endian values (the writer side of [`Reader`]).
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn cstring(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

/// The loss a model was trained with (fastText's `loss_name` enum values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    HierarchicalSoftmax = 1,
    NegativeSampling = 2,
    Softmax = 3,
    OneVsAll = 4,
}

/// The model kind (fastText's `model_name`); only `Supervised` models classify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Cbow = 1,
    SkipGram = 2,
    Supervised = 3,
}

/// The arguments block stored after the header (the training settings inference needs).
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub dim: i32,
    pub ws: i32,
    pub epoch: i32,
    pub min_count: i32,
    pub neg: i32,
    pub word_ngrams: i32,
    pub loss: Loss,
    pub model: ModelKind,
    pub bucket: i32,
    pub minn: i32,
    pub maxn: i32,
    pub lr_update_rate: i32,
    pub t: f64,
}

impl Args {
    pub fn read(r: &mut Reader) -> Result<Self> {
        let dim = r.i32("args.dim")?;
        let ws = r.i32("args.ws")?;
        let epoch = r.i32("args.epoch")?;
        let min_count = r.i32("args.minCount")?;
        let neg = r.i32("args.neg")?;
        let word_ngrams = r.i32("args.wordNgrams")?;
        let loss = match r.i32("args.loss")? {
            1 => Loss::HierarchicalSoftmax,
            2 => Loss::NegativeSampling,
            3 => Loss::Softmax,
            4 => Loss::OneVsAll,
            v => return Err(r.error("args.loss", format!("unknown loss {v}"))),
        };
        let model = match r.i32("args.model")? {
            1 => ModelKind::Cbow,
            2 => ModelKind::SkipGram,
            3 => ModelKind::Supervised,
            v => return Err(r.error("args.model", format!("unknown model kind {v}"))),
        };
        let args = Self {
            dim,
            ws,
            epoch,
            min_count,
            neg,
            word_ngrams,
            loss,
            model,
            bucket: r.i32("args.bucket")?,
            minn: r.i32("args.minn")?,
            maxn: r.i32("args.maxn")?,
            lr_update_rate: r.i32("args.lrUpdateRate")?,
            t: r.f64("args.t")?,
        };
        if args.dim <= 0 || args.bucket < 0 || args.minn < 0 || args.maxn < 0 {
            return Err(r.error("args", format!("implausible settings {args:?}")));
        }
        Ok(args)
    }

    pub fn write(&self, w: &mut Writer) {
        for v in [
            self.dim,
            self.ws,
            self.epoch,
            self.min_count,
            self.neg,
            self.word_ngrams,
            self.loss as i32,
            self.model as i32,
            self.bucket,
            self.minn,
            self.maxn,
            self.lr_update_rate,
        ] {
            w.i32(v);
        }
        w.f64(self.t);
    }
}
