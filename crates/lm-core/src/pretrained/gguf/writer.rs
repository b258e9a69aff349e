//! A small GGUF v3 writer: metadata of any value type and F32 / F16 / Q8_0 tensors (or raw
//! blocks of any supported type). Enough for tests and for exporting small models.

use std::io::Write;
use std::path::Path;

use half::f16;

use super::reader::{DEFAULT_ALIGNMENT, MAGIC};
use super::value::{GgmlType, GgufValue, type_id};
use crate::error::{LmError, Result};
use crate::fsutil::AtomicFile;

struct PendingTensor {
    name: String,
    ty: GgmlType,
    /// Row-major (outermost first), as the reader reports them.
    dims: Vec<usize>,
    bytes: Vec<u8>,
}

/// Collects metadata and tensors, then writes them as one GGUF v3 file. The alignment is
/// `general.alignment` when set (a power of two), else 32.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets metadata `key` (replacing an earlier value; keys keep their first position).
    pub fn set(&mut self, key: impl Into<String>, value: GgufValue) -> &mut Self {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Adds a tensor of row-major `dims` from f32 `data`, stored as `ty` (F32, F16, or Q8_0
    /// quantised with ggml's reference rule).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        data: &[f32],
        ty: GgmlType,
    ) -> Result<&mut Self> {
        let n: usize = dims.iter().product();
        if data.len() != n {
            return Err(LmError::shape(
                name,
                format!("{n} values for dims {dims:?}"),
                &[data.len()],
            ));
        }
        let bytes = match ty {
            GgmlType::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            GgmlType::F16 => data
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
            GgmlType::Q8_0 => quantize_q8_0(name, dims, data)?,
            other => {
                return Err(LmError::Dtype {
                    tensor: name.to_string(),
                    dtype: other.to_string(),
                    reason: "the writer quantises only to F32, F16 and Q8_0 (use add_raw_tensor)"
                        .into(),
                });
            }
        };
        self.add_raw_tensor(name, ty, dims, bytes)
    }

    /// Adds a tensor from already-encoded ggml blocks of `ty` (e.g. hand-built Q4_K blocks).
    pub fn add_raw_tensor(
        &mut self,
        name: &str,
        ty: GgmlType,
        dims: &[usize],
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        let n: usize = dims.iter().product();
        let row = dims.last().copied().unwrap_or(1);
        let expected = ty
            .bytes_for(n)
            .filter(|_| row.is_multiple_of(ty.block_elems()));
        if expected != Some(bytes.len()) {
            return Err(LmError::shape(
                name,
                format!("{dims:?} as whole {ty} blocks per row ({expected:?} bytes)"),
                &[bytes.len()],
            ));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(LmError::config(format!("tensor `{name}`"), "added twice"));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            bytes,
        });
        Ok(self)
    }

    fn alignment(&self) -> Result<usize> {
        let Some((_, v)) = self.metadata.iter().find(|(k, _)| k == "general.alignment") else {
            return Ok(DEFAULT_ALIGNMENT as usize);
        };
        match v.as_i128().and_then(|a| usize::try_from(a).ok()) {
            Some(a) if a.is_power_of_two() => Ok(a),
            _ => Err(LmError::config(
                "general.alignment",
                format!("{v:?} is not a power of two"),
            )),
        }
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let align = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut out, key, value)?;
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in t.dims.iter().rev() {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + t.bytes.len()).next_multiple_of(align);
        }
        for t in &self.tensors {
            out.resize(out.len().next_multiple_of(align), 0);
            out.extend_from_slice(&t.bytes);
        }
        if !self.tensors.is_empty() {
            out.resize(out.len().next_multiple_of(align), 0);
        }
        Ok(out)
    }

    /// Writes the file atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let mut file = AtomicFile::create(path)?;
        file.write_all(&bytes).map_err(|e| LmError::io(path, e))?;
        file.commit()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, value: &GgufValue) -> Result<()> {
    match value {
        GgufValue::U8(v) => out.push(*v),
        GgufValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            // The element type is stored once; an empty array is written as one of u8.
            let elem = items.first().map_or(type_id::U8, GgufValue::type_id);
            if let Some(odd) = items.iter().find(|v| v.type_id() != elem) {
                return Err(LmError::config(
                    key,
                    format!(
                        "array mixes element types ({} and {})",
                        items[0].type_name(),
                        odd.type_name()
                    ),
                ));
            }
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, key, item)?;
            }
        }
    }
    Ok(())
}

/// ggml's reference Q8_0 quantisation: per block of 32, d = max|x| / 127,
/// q = round(x / d) (half away from zero, computed as x * (1/d)), d stored as f16.
pub(crate) fn quantize_q8_0(name: &str, dims: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let row = dims.last().copied().unwrap_or(1);
    if !row.is_multiple_of(32) {
        return Err(LmError::shape(name, "rows a multiple of 32 for Q8_0", dims));
    }
    let mut out = Vec::with_capacity(data.len() / 32 * 34);
    for block in data.chunks_exact(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| ((x * id).round() as i8) as u8));
    }
    Ok(out)
}
