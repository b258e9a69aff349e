//! Dequantisation of ggml blocks to f32, following ggml's reference formulas
//! (`dequantize_row_*` in ggml-quants.c, as the `gguf` Python package computes them).
//!
//! Every product is evaluated in the same order and f32 precision as the reference (no fused
//! multiply-add), so results are bit-identical to it.

use half::bf16;
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

/// The little-endian IEEE half at byte `i` (ggml's scales are fp16). Converted here rather
/// than by `half`, whose conversion is an out-of-line call behind a run-time CPU check:
/// inlined, it costs a few integer ops per block in the packed products.
#[inline(always)]
fn half_at(b: &[u8], i: usize) -> f32 {
    HALVES[usize::from(u16::from_le_bytes([b[i], b[i + 1]]))]
}

/// Every half's f32 value (256 KiB): a table load per block scale is cheaper than the
/// conversion's branches in the packed products' per-block work.
static HALVES: std::sync::LazyLock<Box<[f32]>> =
    std::sync::LazyLock::new(|| (0..=u16::MAX).map(f16_to_f32).collect());

/// The f32 equal to IEEE half `h` (every half is exactly representable).
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = (u32::from(h) & 0x8000) << 16;
    let exp = u32::from(h >> 10) & 0x1F;
    let man = u32::from(h & 0x3FF);
    match exp {
        // Zero or subnormal: man · 2⁻²⁴.
        0 => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            f32::from_bits(v.to_bits() | sign)
        }
        // Infinity or NaN (quiet, payload kept).
        31 if man == 0 => f32::from_bits(sign | 0x7F80_0000),
        31 => f32::from_bits(sign | 0x7FC0_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

#[inline(always)]
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// A block type with a fixed layout, for callers that dequantise one block at a time in a
/// hot loop ([`crate::packed`]): static dispatch, so the block's code is inlined (and
/// vectorised) into the caller.
pub(crate) trait QuantBlock {
    const ELEMS: usize;
    const BYTES: usize;
    /// Dequantises one block: `b.len() == BYTES`, `o.len() == ELEMS`.
    fn dequant(b: &[u8], o: &mut [f32]);

    /// [`Self::dequant`] with AVX2 intrinsics where the compiler's own vectorisation falls
    /// short (the same values: no fused multiply-add).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C ([`crate::cpu_dot::avx2_fma`] checks all).
    #[inline(always)]
    unsafe fn dequant_avx2(b: &[u8], o: &mut [f32]) {
        Self::dequant(b, o)
    }

    /// How many 32-value groups [`Self::vectors_avx2`] makes of a block (`ELEMS / 32`),
    /// 0 where it does not exist.
    #[cfg(target_arch = "x86_64")]
    const VECTOR_GROUPS: usize = 0;

    /// Group `group` (values 32·group..32·group + 32) of the block as 4 AVX2 vectors of 8
    /// (values 8i..8i + 8 of the group in vector i), for the products that use them in
    /// registers. Only where [`Self::VECTOR_GROUPS`] is not 0.
    ///
    /// # Safety
    /// As [`Self::dequant_avx2`].
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn vectors_avx2(_b: &[u8], _group: usize) -> [std::arch::x86_64::__m256; 4] {
        unreachable!("a block type without AVX2 vectors")
    }
}

/// A [`QuantBlock`] for block function `$f`, with `$avx2` (one 32-value group of a block
/// as 4 vectors) as its AVX2 form when given.
macro_rules! quant_block {
    ($name:ident, $elems:literal, $bytes:literal, $f:ident $(, $avx2:path)?) => {
        pub(crate) struct $name;
        impl QuantBlock for $name {
            const ELEMS: usize = $elems;
            const BYTES: usize = $bytes;
            #[inline(always)]
            fn dequant(b: &[u8], o: &mut [f32]) {
                $f(b, o)
            }
            $(
                #[cfg(target_arch = "x86_64")]
                #[inline(always)]
                unsafe fn dequant_avx2(b: &[u8], o: &mut [f32]) {
                    for (group, o) in o.chunks_exact_mut(32).enumerate() {
                        // SAFETY: the caller runs on an AVX2 CPU (this method's contract).
                        unsafe { x86::store(o, $avx2(b, group)) }
                    }
                }

                #[cfg(target_arch = "x86_64")]
                const VECTOR_GROUPS: usize = $elems / 32;

                #[cfg(target_arch = "x86_64")]
                #[inline(always)]
                unsafe fn vectors_avx2(b: &[u8], group: usize) -> [std::arch::x86_64::__m256; 4] {
                    // SAFETY: the caller runs on an AVX2 CPU (this method's contract).
                    unsafe { $avx2(b, group) }
                }
            )?
        }
    };
}

quant_block!(BlockQ40, 32, 18, q4_0, x86::q4_0);
quant_block!(BlockQ41, 32, 20, q4_1, x86::q4_1);
quant_block!(BlockQ50, 32, 22, q5_0, x86::q5_0);
quant_block!(BlockQ80, 32, 34, q8_0, x86::q8_0);
// Q4_K has no AVX2 form: LLVM's vectorisation of the scalar code through the scratch path
// measured faster (11.5-12 against 10.3 G weights/s at batch 1) than the group-at-a-time
// intrinsics, which redo the 6-bit scale unpacking for every group.
quant_block!(BlockQ4K, 256, 144, q4_k);
quant_block!(BlockQ6K, 256, 210, q6_k, x86::q6_k);

/// AVX2 (and F16C for the scales) forms of the 32-element types and of Q6_K: each 32-value
/// group's quants assembled as 32 bytes in one register, widened 8 at a time to f32, then
/// the type's formula as in the scalar code.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::u32_at;

    /// The little-endian half at byte `i`, broadcast (F16C's conversion: exact, as
    /// [`super::f16_to_f32`]).
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    fn half(b: &[u8], i: usize) -> __m256 {
        let bits = u16::from_le_bytes([b[i], b[i + 1]]);
        _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    /// A legacy block's 16 quant bytes as 32 nibble bytes: element j < 16 is the low
    /// nibble of byte j, element j + 16 its high nibble.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    fn nibble_bytes(qs: &[u8]) -> __m256i {
        assert!(qs.len() >= 16);
        // SAFETY: 16 bytes are readable (asserted).
        let bytes = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        let low = _mm_set1_epi8(0x0F);
        _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16::<4>(bytes), low),
            _mm_and_si128(bytes, low),
        )
    }

    /// Stores 4 vectors as the block's 32 outputs.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn store(o: &mut [f32], v: [__m256; 4]) {
        assert!(o.len() >= 32);
        for (i, v) in v.into_iter().enumerate() {
            // SAFETY: 8 floats at 8i < 32 <= o.len() (asserted).
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * i), v) };
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn q4_0(b: &[u8], _group: usize) -> [__m256; 4] {
        let d = half(b, 0);
        let q = _mm256_sub_epi8(nibble_bytes(&b[2..18]), _mm256_set1_epi8(8));
        bytes_to_f32(q).map(|q| _mm256_mul_ps(d, q))
    }

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn q4_1(b: &[u8], _group: usize) -> [__m256; 4] {
        let (d, m) = (half(b, 0), half(b, 2));
        bytes_to_f32(nibble_bytes(&b[4..20])).map(|q| _mm256_add_ps(_mm256_mul_ps(d, q), m))
    }

    /// Bit `j` of `bits` as byte `j` of a vector: 0xFF where it is set, 0 where clear.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    fn bit_bytes(bits: u32) -> __m256i {
        // Byte j takes byte j / 8 of the word (the shuffle works within 128-bit lanes; the
        // word is in both), then tests its bit j % 8.
        let word = _mm256_set1_epi32(bits as i32);
        let spread = _mm256_shuffle_epi8(
            word,
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
    }

    /// The 32 signed bytes of `q` as 4 vectors of f32 (elements 8i..8i + 8 in vector i).
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    fn bytes_to_f32(q: __m256i) -> [__m256; 4] {
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
        [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
            .map(|b| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)))
    }

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn q5_0(b: &[u8], _group: usize) -> [__m256; 4] {
        let d = half(b, 0);
        // The fifth bit from the 32 high bits, then q - 16 (in -16..=15: fits a byte).
        let fifth = _mm256_and_si256(bit_bytes(u32_at(b, 2)), _mm256_set1_epi8(0x10));
        let q = _mm256_sub_epi8(
            _mm256_or_si256(nibble_bytes(&b[6..22]), fifth),
            _mm256_set1_epi8(16),
        );
        bytes_to_f32(q).map(|q| _mm256_mul_ps(d, q))
    }

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn q8_0(b: &[u8], _group: usize) -> [__m256; 4] {
        assert!(b.len() >= 34);
        let d = half(b, 0);
        std::array::from_fn(|i| {
            // SAFETY: 8 bytes at 2 + 8i, within the 34 asserted.
            let q = unsafe { _mm_loadl_epi64(b.as_ptr().add(2 + 8 * i).cast()) };
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d)
        })
    }

    /// Q6_K group `group` (half h = group / 4, quarter t = group % 4): low nibbles from
    /// the low-bit bytes, two high bits from the high-bit bytes, minus 32; its two 16-value
    /// halves have their own scales, as [`super::q6_k`].
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn q6_k(b: &[u8], group: usize) -> [__m256; 4] {
        assert!(b.len() >= 210 && group < 8);
        let (h, t) = (group / 4, group % 4);
        let d = super::half_at(b, 208);
        let dl = [0, 1].map(|i| _mm256_set1_ps(d * f32::from(b[192 + 8 * h + 2 * t + i] as i8)));
        // SAFETY: 32 bytes at 64h + 32(t % 2) <= 96 and at 128 + 32h <= 160, within 210.
        let (lows, highs) = unsafe {
            (
                _mm256_loadu_si256(b.as_ptr().add(64 * h + 32 * (t % 2)).cast()),
                _mm256_loadu_si256(b.as_ptr().add(128 + 32 * h).cast()),
            )
        };
        let lows = if t >= 2 {
            _mm256_srli_epi16::<4>(lows)
        } else {
            lows
        };
        let lows = _mm256_and_si256(lows, _mm256_set1_epi8(0x0F));
        let highs = _mm256_srl_epi16(highs, _mm_cvtsi32_si128(2 * t as i32));
        let highs = _mm256_and_si256(highs, _mm256_set1_epi8(3));
        let q = _mm256_sub_epi8(
            _mm256_or_si256(lows, _mm256_slli_epi16::<4>(highs)),
            _mm256_set1_epi8(32),
        );
        let v = bytes_to_f32(q);
        [
            _mm256_mul_ps(dl[0], v[0]),
            _mm256_mul_ps(dl[0], v[1]),
            _mm256_mul_ps(dl[1], v[2]),
            _mm256_mul_ps(dl[1], v[3]),
        ]
    }
}

/// A legacy block's 16 quant bytes as 32 nibbles: element `j` in the low nibble of byte
/// `j`, element `j + 16` in its high nibble (unpacked with 64-bit masks, so that the
/// conversion after it is a plain 32-element loop).
#[inline(always)]
fn nibbles(b: &[u8]) -> [u8; 32] {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    let word = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let (a, c) = (word(0), word(1));
    let mut q = [0u8; 32];
    for (i, w) in [a & LOW, c & LOW, (a >> 4) & LOW, (c >> 4) & LOW]
        .into_iter()
        .enumerate()
    {
        q[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    q
}

#[inline(always)]
fn block32(o: &mut [f32]) -> &mut [f32; 32] {
    o.try_into().expect("32-element block")
}

// Q4_0: d (f16), 16 bytes of nibbles; x = d * (q - 8).
#[inline(always)]
fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = half_at(b, 0);
    let (q, o) = (nibbles(&b[2..18]), block32(o));
    for j in 0..32 {
        o[j] = d * (i32::from(q[j]) - 8) as f32;
    }
}

// Q4_1: d, m (f16), 16 bytes of nibbles; x = d * q + m.
#[inline(always)]
fn q4_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let (q, o) = (nibbles(&b[4..20]), block32(o));
    for j in 0..32 {
        o[j] = d * f32::from(q[j]) + m;
    }
}

/// Element `j`'s nibble of a legacy block (low nibble of byte `j`, high of byte `j - 16`).
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0F
    } else {
        qs[j - 16] >> 4
    }
}

/// The 5-bit quant of element `j`: its nibble plus bit `j` of `qh` as bit 4.
fn q5(qh: u32, qs: &[u8], j: usize) -> u8 {
    nibble(qs, j) | ((((qh >> j) & 1) as u8) << 4)
}

// Q5_0: d (f16), qh (u32), 16 bytes of nibbles; x = d * (q - 16), q = nibble | bit j of qh.
#[inline(always)]
fn q5_0(b: &[u8], o: &mut [f32]) {
    let (d, qh) = (half_at(b, 0), u32_at(b, 2));
    let (q, o) = (nibbles(&b[6..22]), block32(o));
    for j in 0..32 {
        let high = ((qh >> j) & 1) << 4;
        o[j] = d * ((u32::from(q[j]) | high) as i32 - 16) as f32;
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
#[inline(always)]
fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = half_at(b, 0);
    let qs: &[u8; 32] = b[2..34].try_into().expect("32 quant bytes");
    let o = block32(o);
    for j in 0..32 {
        o[j] = f32::from(qs[j] as i8) * d;
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

/// Q4_K as [`k_affine`] with [`k_nibble`], as loops over each 32 bytes' two groups.
#[inline(always)]
fn q4_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    for c in 0..4 {
        let qs: &[u8; 32] = b[16 + 32 * c..48 + 32 * c].try_into().expect("Q4_K block");
        let pair = &mut o[64 * c..64 * c + 64];
        let (lo, hi) = pair.split_at_mut(32);
        for (g, (group, shift)) in [(lo, 0), (hi, 4)].into_iter().enumerate() {
            let (sc, m) = k_scale_min(scales, 2 * c + g);
            let dl = d * f32::from(sc);
            let ml = dmin * f32::from(m);
            let group: &mut [f32; 32] = group.try_into().expect("32-element group");
            for l in 0..32 {
                group[l] = dl * f32::from((qs[l] >> shift) & 0x0F) - ml;
            }
        }
    }
}

// Q5_K: as Q4_K with 32 bytes of high bits (bit j of byte l = group j, element l).
fn q5_k(b: &[u8], o: &mut [f32]) {
    let (qh, qs) = (&b[16..48], &b[48..176]);
    k_affine(b, o, |j, l| k_nibble(qs, j, l) | (((qh[l] >> j) & 1) << 4));
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed scales, d (f16);
// 16 groups of 16: x = (d * scale) * (q - 32). Element e = 128h + 32t + l (half h, quarter
// t, l < 32) takes its low nibble from byte 64h + 32(t % 2) + l (high nibble when t ≥ 2)
// and its top two bits from bits 2t of byte 32h + l of the highs (as `crumb`).
#[inline(always)]
fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = half_at(b, 208);
    for h in 0..2 {
        let highs: &[u8; 32] = qh[32 * h..32 * h + 32].try_into().expect("Q6_K block");
        for t in 0..4 {
            let low_at = 64 * h + 32 * (t % 2);
            let lows: &[u8; 32] = ql[low_at..low_at + 32].try_into().expect("Q6_K block");
            let out: &mut [f32; 32] = (&mut o[128 * h + 32 * t..128 * h + 32 * t + 32])
                .try_into()
                .expect("32 elements");
            for (half, out) in out.chunks_exact_mut(16).enumerate() {
                let dl = d * f32::from(scales[8 * h + 2 * t + half] as i8);
                for (i, y) in out.iter_mut().enumerate() {
                    let l = 16 * half + i;
                    let lo = (lows[l] >> (4 * (t / 2))) & 0x0F;
                    let hi = (highs[l] >> (2 * t)) & 3;
                    *y = dl * (i32::from(lo | (hi << 4)) - 32) as f32;
                }
            }
        }
    }
}

// Q8_K: d (f32), 256 signed bytes, 16 i16 block sums (unused here); x = d * q.
fn q8_k(b: &[u8], o: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (y, &q) in o.iter_mut().zip(&b[4..260]) {
        *y = d * f32::from(q as i8);
    }
}
