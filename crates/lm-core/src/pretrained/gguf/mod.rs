//! GGUF (v2/v3) files: a memory-mapped reader with typed metadata accessors and f32
//! dequantisation of ggml tensors, plus a small writer (for tests and tools).
//!
//! Tensor dims are reported row-major (outermost first), the reverse of GGUF's `ne` order,
//! so a dequantised tensor is a plain row-major array of those dims.

pub(crate) mod dequant;
mod reader;
mod value;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{LmError, Result};

pub use dequant::{dequantize, dequantize_into};
pub use reader::GgufTensorInfo;
pub use value::{GgmlType, GgufValue};
pub use writer::GgufWriter;

/// An open GGUF file: parsed header plus a read-only map of the whole file.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    data_offset: u64,
    alignment: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates `path`: magic, version (2 or 3), the whole header, and that every
    /// tensor's data are aligned and lie inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| LmError::io(path, e))?;
        // SAFETY: the map is read-only and private to this struct. Like every mmap reader we
        // assume nobody truncates or rewrites the file while it is open (the OS would then
        // change or fault the mapped bytes); the writer here replaces files by rename.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| LmError::io(path, e))?;
        let header = reader::parse_header(&map).map_err(|reason| bad(path, reason))?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            data_offset: header.data_offset,
            alignment: header.alignment,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The value of `key`, or an error naming the file and the key.
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| bad(&self.path, format!("missing metadata key `{key}`")))
    }

    fn wrong_type(&self, key: &str, value: &GgufValue, expected: &str) -> LmError {
        let got = match value {
            GgufValue::Array(_) | GgufValue::String(_) => value.type_name().to_string(),
            _ => format!("{} {value:?}", value.type_name()),
        };
        bad(
            &self.path,
            format!("metadata `{key}` is {got}, expected {expected}"),
        )
    }

    /// An integer of any width, as u64 (negative values are an error).
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, "a non-negative integer"))
    }

    /// An integer of any width that fits a usize.
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, v, "a non-negative integer"))
    }

    /// A float (f32 or f64) or integer, as f64.
    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(key, v, "a number"))
    }

    /// A float (f32 or f64) or integer, as f32.
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        match v {
            GgufValue::F32(x) => Ok(*x),
            _ => v
                .as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| self.wrong_type(key, v, "a number")),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(b) => Ok(*b),
            v => Err(self.wrong_type(key, v, "a bool")),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }

    /// `general.architecture` (e.g. `llama`, `qwen2`).
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }

    /// The elements of array `key`, each converted by `f` (which names what it expects).
    fn array<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        let v = self.require(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, v, &format!("an array of {expected}")))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                f(item).ok_or_else(|| self.wrong_type(&format!("{key}[{i}]"), item, expected))
            })
            .collect()
    }

    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key, "strings", GgufValue::as_str)
    }

    /// An array of integers that fit an i32 (any integer width).
    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.array(key, "i32 integers", |v| {
            v.as_i128().and_then(|i| i32::try_from(i).ok())
        })
    }

    /// An array of numbers, as f32 (e.g. sentencepiece scores).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key, "numbers", |v| match v {
            GgufValue::F32(x) => Some(*x),
            _ => v.as_f64().map(|x| x as f32),
        })
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    fn require_tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| LmError::MissingTensor {
                file: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    /// The raw (still quantised) bytes of tensor `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.require_tensor(name)?;
        // Bounds were checked at open, so these conversions and the slice cannot fail.
        let start = (self.data_offset + t.offset) as usize;
        Ok(&self.map[start..start + t.n_bytes()])
    }

    /// Tensor `name` dequantised to f32, with its row-major dims.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let t = self.require_tensor(name)?;
        let bytes = self.tensor_bytes(name)?;
        let data = dequantize(t.ggml_type, bytes, t.n_elements())
            .map_err(|reason| bad(&self.path, format!("tensor `{name}`: {reason}")))?;
        Ok((data, t.dims.clone()))
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> LmError {
    LmError::BadFile {
        file: path.to_path_buf(),
        reason: reason.into(),
    }
}
