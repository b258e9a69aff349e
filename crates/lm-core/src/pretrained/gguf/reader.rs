//! Parsing of a GGUF header: magic, version, metadata key/values and tensor infos.
//!
//! Layout (little-endian): `GGUF`, u32 version, u64 tensor count, u64 metadata count, the
//! metadata (string key, u32 type, value), the tensor infos (string name, u32 n_dims, u64
//! dims innermost first, u32 ggml type, u64 offset into the data section), then padding to
//! the alignment and the data section. Strings are a u64 length and UTF-8 bytes.

use std::collections::BTreeMap;

use super::value::{GgmlType, GgufValue, type_id};

pub(crate) const MAGIC: &[u8; 4] = b"GGUF";
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays are legal; deeper nesting than this is taken as a corrupt file.
const MAX_DEPTH: usize = 8;
/// ggml's limit on tensor dimensions.
const MAX_DIMS: u32 = 4;

/// A tensor's header entry. `dims` are row-major (outermost first), i.e. GGUF's `ne`
/// reversed: a GGUF `[896, 151936]` embedding is `[151936, 896]` here.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    pub ggml_type: GgmlType,
    pub dims: Vec<usize>,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// Number of elements (1 for a scalar).
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes the tensor's data take (checked against overflow when the file was opened).
    pub fn n_bytes(&self) -> usize {
        self.ggml_type.bytes_for(self.n_elements()).unwrap_or(0)
    }
}

/// Everything before the data section.
pub(crate) struct Header {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute file offset of the data section (aligned).
    pub data_offset: u64,
    pub alignment: u64,
}

/// A bounds-checked little-endian reader over the mapped file; errors are plain strings
/// that the caller prefixes with the file name.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "file ends inside {what} (needs {n} bytes at offset {}, file has {})",
                self.pos,
                self.bytes.len()
            )
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        let n = self.u64(what)?;
        usize::try_from(n).map_err(|_| format!("{what}: length {n} too large"))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.len(what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("{what}: invalid UTF-8 ({e})"))
    }

    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<GgufValue, String> {
        Ok(match ty {
            type_id::U8 => GgufValue::U8(self.array::<1>(what)?[0]),
            type_id::I8 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            type_id::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            type_id::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            type_id::U32 => GgufValue::U32(self.u32(what)?),
            type_id::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            type_id::U64 => GgufValue::U64(self.u64(what)?),
            type_id::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            type_id::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            type_id::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            type_id::BOOL => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(format!("{what}: invalid bool byte {b}")),
            },
            type_id::STRING => GgufValue::String(self.string(what)?),
            type_id::ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(format!("{what}: arrays nested deeper than {MAX_DEPTH}"));
                }
                let elem_ty = self.u32(what)?;
                let n = self.len(what)?;
                // A corrupt count must not reserve absurd memory: cap by what the rest of
                // the file could hold (and a fixed bound; the vector grows past it if real).
                let room = (self.bytes.len() - self.pos) / min_value_size(elem_ty);
                let mut items = Vec::with_capacity(n.min(room).min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(elem_ty, what, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            other => return Err(format!("{what}: unknown value type id {other}")),
        })
    }
}

/// The fewest bytes a value of type `ty` can take.
fn min_value_size(ty: u32) -> usize {
    match ty {
        type_id::U16 | type_id::I16 => 2,
        type_id::U32 | type_id::I32 | type_id::F32 => 4,
        type_id::U64 | type_id::I64 | type_id::F64 | type_id::STRING => 8,
        type_id::ARRAY => 12,
        _ => 1,
    }
}

/// Parses the header of a GGUF file held in `bytes`, checking that every tensor's data lie
/// inside `bytes`.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.array::<4>("the magic")?;
    if &magic != MAGIC {
        return Err(format!(
            "not a GGUF file (magic {magic:02x?}, expected \"GGUF\")"
        ));
    }
    let version = c.u32("the version")?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() == 3 || version.swap_bytes() == 2 {
            " (a big-endian GGUF; only little-endian files are supported)"
        } else {
            ""
        };
        return Err(format!(
            "unsupported GGUF version {version}{hint} (2 and 3 are)"
        ));
    }
    let n_tensors = c.len("the tensor count")?;
    let n_kv = c.len("the metadata count")?;

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let what = format!("metadata `{key}`");
        let ty = c.u32(&what)?;
        let value = c.value(ty, &what, 0)?;
        if metadata.insert(key, value).is_some() {
            return Err(format!("{what} appears twice"));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_i128() {
            Some(a) if a > 0 && (a as u64).is_power_of_two() => a as u64,
            _ => return Err(format!("general.alignment {v:?} is not a power of two")),
        },
    };

    let mut tensors: Vec<GgufTensorInfo> =
        Vec::with_capacity(n_tensors.min(bytes.len() / 24).min(1 << 16));
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor info #{i}"))?;
        tensors.push(tensor_info(&mut c, name)?);
    }

    let data_offset = (c.pos as u64).next_multiple_of(alignment);
    let mut seen = std::collections::HashSet::new();
    for t in &tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(format!("tensor `{}` appears twice", t.name));
        }
        check_data(t, data_offset, alignment, bytes.len() as u64)?;
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        data_offset,
        alignment,
    })
}

fn tensor_info(c: &mut Cursor<'_>, name: String) -> Result<GgufTensorInfo, String> {
    let what = format!("tensor `{name}`");
    let n_dims = c.u32(&what)?;
    if n_dims > MAX_DIMS {
        return Err(format!(
            "{what}: {n_dims} dimensions (ggml allows {MAX_DIMS})"
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.len(&what)?;
        dims.push(d);
    }
    dims.reverse();
    let type_id = c.u32(&what)?;
    let ggml_type = GgmlType::from_id(type_id)
        .ok_or_else(|| format!("{what}: unsupported ggml type id {type_id}"))?;
    let offset = c.u64(&what)?;
    Ok(GgufTensorInfo {
        name,
        ggml_type,
        dims,
        offset,
    })
}

/// Checks that a tensor's size is a whole number of blocks and that its data are aligned
/// and inside the file.
fn check_data(
    t: &GgufTensorInfo,
    data_offset: u64,
    align: u64,
    file_len: u64,
) -> Result<(), String> {
    let what = format!("tensor `{}`", t.name);
    let n = t
        .dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("{what}: element count of {:?} overflows", t.dims))?;
    // ggml blocks run along the innermost dimension, so each row must be whole blocks.
    let row = t.dims.last().copied().unwrap_or(1);
    let block = t.ggml_type.block_elems();
    if !row.is_multiple_of(block) {
        return Err(format!(
            "{what}: row length {row} is not a multiple of the {} block size {block}",
            t.ggml_type
        ));
    }
    let size = t
        .ggml_type
        .bytes_for(n)
        .ok_or_else(|| format!("{what}: byte size overflows"))? as u64;
    if !t.offset.is_multiple_of(align) {
        return Err(format!(
            "{what}: data offset {} is not a multiple of the alignment {align}",
            t.offset
        ));
    }
    let start = data_offset.checked_add(t.offset);
    let end = start.and_then(|s| s.checked_add(size));
    match end {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(format!(
            "{what} ({} {:?}, {size} bytes at data offset {}) extends past the end of the file \
             ({file_len} bytes): truncated file?",
            t.ggml_type, t.dims, t.offset
        )),
    }
}
