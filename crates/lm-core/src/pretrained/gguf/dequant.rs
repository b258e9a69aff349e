//! Dequantisation of ggml blocks to f32, following ggml's reference formulas
//! (`dequantize_row_*` in ggml-quants.c, as the `gguf` Python package computes them).
//!
//! Every product is evaluated in the same order and f32 precision as the reference (no fused
//! multiply-add), so results are bit-identical to it.

use half::{bf16, f16};
use rayon::prelude::*;

use super::value::GgmlType;

/// Blocks are dequantised in parallel in chunks of about this many elements.
const CHUNK_ELEMS: usize = 1 << 16;

/// Dequantises `bytes` (whole blocks of `ty`) into `out`, whose length must be the element
/// count those bytes hold. The error says which sizes disagree.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    let expected = ty.bytes_for(out.len()).ok_or_else(|| {
        format!(
            "{} elements are not a whole number of {ty} blocks of {}",
            out.len(),
            ty.block_elems()
        )
    })?;
    if bytes.len() != expected {
        return Err(format!(
            "{} elements of {ty} need {expected} bytes, got {}",
            out.len(),
            bytes.len()
        ));
    }
    let block_fn = block_fn(ty);
    let (be, bb) = (ty.block_elems(), ty.block_bytes());
    let chunk_blocks = (CHUNK_ELEMS / be).max(1);
    out.par_chunks_mut(chunk_blocks * be)
        .zip(bytes.par_chunks(chunk_blocks * bb))
        .for_each(|(out, bytes)| {
            for (o, b) in out.chunks_exact_mut(be).zip(bytes.chunks_exact(bb)) {
                block_fn(b, o);
            }
        });
    Ok(())
}

/// Dequantises `bytes` holding `n_elems` elements of `ty` into a new vector.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elems: usize) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; n_elems];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

type BlockFn = fn(&[u8], &mut [f32]);

fn block_fn(ty: GgmlType) -> BlockFn {
    match ty {
        GgmlType::F32 => |b, o| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, o| o[0] = half_at(b, 0),
        GgmlType::BF16 => |b, o| o[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        GgmlType::F64 => |b, o| o[0] = f64::from_le_bytes(le8(b)) as f32,
        GgmlType::I8 => |b, o| o[0] = f32::from(b[0] as i8),
        GgmlType::I16 => |b, o| o[0] = f32::from(i16::from_le_bytes([b[0], b[1]])),
        GgmlType::I32 => |b, o| o[0] = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        GgmlType::I64 => |b, o| o[0] = i64::from_le_bytes(le8(b)) as f32,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q2_K => q2_k,
        GgmlType::Q3_K => q3_k,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q5_K => q5_k,
        GgmlType::Q6_K => q6_k,
        GgmlType::Q8_K => q8_k,
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The little-endian IEEE half at byte `i` (ggml's scales are fp16).
fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Legacy 32-element blocks store element `j` in the low nibble of byte `j` and element
/// `j + 16` in its high nibble.
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0F
    } else {
        qs[j - 16] >> 4
    }
}

// Q4_0: d (f16), 16 bytes of nibbles; x = d * (q - 8).
fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = half_at(b, 0);
    let qs = &b[2..18];
    for (j, y) in o.iter_mut().enumerate() {
        *y = d * (i32::from(nibble(qs, j)) - 8) as f32;
    }
}

// Q4_1: d, m (f16), 16 bytes of nibbles; x = d * q + m.
fn q4_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let qs = &b[4..20];
    for (j, y) in o.iter_mut().enumerate() {
        *y = d * f32::from(nibble(qs, j)) + m;
    }
}

/// The 5-bit quant of element `j`: its nibble plus bit `j` of `qh` as bit 4.
fn q5(qh: u32, qs: &[u8], j: usize) -> u8 {
    nibble(qs, j) | ((((qh >> j) & 1) as u8) << 4)
}

// Q5_0: d (f16), qh (u32), 16 bytes of nibbles; x = d * (q - 16).
fn q5_0(b: &[u8], o: &mut [f32]) {
    let (d, qh) = (half_at(b, 0), u32_at(b, 2));
    let qs = &b[6..22];
    for (j, y) in o.iter_mut().enumerate() {
        *y = d * (i32::from(q5(qh, qs, j)) - 16) as f32;
    }
}

// Q5_1: d, m (f16), qh (u32), 16 bytes of nibbles; x = d * q + m.
fn q5_1(b: &[u8], o: &mut [f32]) {
    let (d, m, qh) = (half_at(b, 0), half_at(b, 2), u32_at(b, 4));
    let qs = &b[8..24];
    for (j, y) in o.iter_mut().enumerate() {
        *y = d * f32::from(q5(qh, qs, j)) + m;
    }
}

// Q8_0: d (f16), 32 signed bytes; x = q * d.
fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = half_at(b, 0);
    for (y, &q) in o.iter_mut().zip(&b[2..34]) {
        *y = f32::from(q as i8) * d;
    }
}

/// The 2-bit field of element `e` (0..256) in K-quant layouts that pack four 32-element
/// groups into each 32-byte run: bytes `32 * (e / 128)..`, shift `2 * ((e % 128) / 32)`.
fn crumb(qs: &[u8], e: usize) -> u8 {
    (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3
}

// Q2_K: 16 bytes of 4-bit scale|4-bit min, 64 bytes of 2-bit quants, d, dmin (f16);
// 16 groups of 16: x = (d * scale) * q - (dmin * min).
fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (half_at(b, 80), half_at(b, 82));
    for (e, y) in o.iter_mut().enumerate() {
        let sc = scales[e / 16];
        let dl = d * f32::from(sc & 0x0F);
        let ml = dmin * f32::from(sc >> 4);
        *y = dl * f32::from(crumb(qs, e)) - ml;
    }
}

// Q3_K: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, d (f16);
// 16 groups of 16: x = (d * (scale - 32)) * (q - (high bit clear ? 4 : 0)).
fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = half_at(b, 108);
    let mut dl = [0f32; 16];
    for (i, dl) in dl.iter_mut().enumerate() {
        // Low 4 bits: bytes 0..8 (low then high nibbles); high 2 bits: bytes 8..12.
        let lo = (sc[i % 8] >> (4 * (i / 8))) & 0x0F;
        let hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        *dl = d * (i32::from(lo | (hi << 4)) - 32) as f32;
    }
    for (e, y) in o.iter_mut().enumerate() {
        let high = (hmask[e % 32] >> (e / 32)) & 1;
        let q = i32::from(crumb(qs, e)) - if high == 0 { 4 } else { 0 };
        *y = dl[e / 16] * q as f32;
    }
}

/// The 8 (scale, min) pairs of Q4_K/Q5_K, 6 bits each, packed in 12 bytes: pairs 0..4 sit
/// in the low 6 bits of bytes 0..4 / 4..8; pairs 4..8 take their low 4 bits from the
/// nibbles of bytes 8..12 and their top 2 bits from the top of bytes 0..4 / 4..8.
pub(crate) fn k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 0x3F, s[j + 4] & 0x3F)
    } else {
        let sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30);
        let m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
        (sc, m)
    }
}

/// Q4_K and Q5_K: d, dmin (f16), 12 scale bytes, then the quants; 8 groups of 32:
/// x = (d * scale) * q - (dmin * min).
fn k_affine(b: &[u8], o: &mut [f32], q_of: impl Fn(usize, usize) -> u8) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    for (j, group) in o.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k_scale_min(scales, j);
        let dl = d * f32::from(sc);
        let ml = dmin * f32::from(m);
        for (l, y) in group.iter_mut().enumerate() {
            *y = dl * f32::from(q_of(j, l)) - ml;
        }
    }
}

/// Element `l` of 32-element group `j` in Q4_K/Q5_K nibbles: groups 2c and 2c+1 share the
/// 32 bytes `32c..`, low then high nibble.
fn k_nibble(qs: &[u8], j: usize, l: usize) -> u8 {
    (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0F
}

fn q4_k(b: &[u8], o: &mut [f32]) {
    let qs = &b[16..144];
    k_affine(b, o, |j, l| k_nibble(qs, j, l));
}

// Q5_K: as Q4_K with 32 bytes of high bits (bit j of byte l = group j, element l).
fn q5_k(b: &[u8], o: &mut [f32]) {
    let (qh, qs) = (&b[16..48], &b[48..176]);
    k_affine(b, o, |j, l| k_nibble(qs, j, l) | (((qh[l] >> j) & 1) << 4));
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed scales, d (f16);
// 16 groups of 16: x = (d * scale) * (q - 32). Each half of 128 elements uses 64 low bytes
// (element e: byte e % 64, nibble (e % 128) / 64) and 32 high bytes (as `crumb`).
fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = half_at(b, 208);
    for (e, y) in o.iter_mut().enumerate() {
        let lo = (ql[64 * (e / 128) + e % 64] >> (4 * ((e % 128) / 64))) & 0x0F;
        let q = i32::from(lo | (crumb(qh, e) << 4)) - 32;
        let dl = d * f32::from(scales[e / 16] as i8);
        *y = dl * q as f32;
    }
}

// Q8_K: d (f32), 256 signed bytes, 16 i16 block sums (unused here); x = d * q.
fn q8_k(b: &[u8], o: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (y, &q) in o.iter_mut().zip(&b[4..260]) {
        *y = d * f32::from(q as i8);
    }
}
