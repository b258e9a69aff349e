//! Per-type dequantisation of hand-built blocks: each test packs chosen quants into the
//! ggml block layout and checks the values against the type's formula.

use half::{bf16, f16};

use super::super::{GgmlType, dequantize};

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

fn deq(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / ty.block_bytes() * ty.block_elems();
    dequantize(ty, bytes, n).expect("whole blocks")
}

/// Legacy layout: element j in the low nibble of byte j, element j + 16 in its high nibble.
fn pack_nibbles(q: &[u8; 32]) -> Vec<u8> {
    (0..16)
        .map(|j| (q[j] & 15) | ((q[j + 16] & 15) << 4))
        .collect()
}

/// Bit i of the u32 = bit 4 of element i.
fn pack_qh(q: &[u8; 32]) -> [u8; 4] {
    let qh = (0..32).fold(0u32, |acc, i| acc | (u32::from(q[i] >> 4) << i));
    qh.to_le_bytes()
}

#[test]
fn plain_types() {
    let xs = [1.5f32, -2.0, 0.0, 3.140625, -1e-3, 65504.0];
    let f32_bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(deq(GgmlType::F32, &f32_bytes), xs);
    let f16_bytes: Vec<u8> = xs.iter().flat_map(|&x| h(x)).collect();
    let want: Vec<f32> = xs.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    assert_eq!(deq(GgmlType::F16, &f16_bytes), want);
    // bf16 is the top half of the f32 bits.
    let bf_bytes: Vec<u8> = xs
        .iter()
        .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let want: Vec<f32> = xs
        .iter()
        .map(|x| f32::from_bits(x.to_bits() & 0xFFFF_0000))
        .collect();
    assert_eq!(deq(GgmlType::BF16, &bf_bytes), want);
    assert_eq!(want[3], bf16::from_f32(3.140625).to_f32());
    let ints: Vec<u8> = [-7i32, 12, 1 << 20]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(deq(GgmlType::I32, &ints), [-7.0, 12.0, 1048576.0]);
}

#[test]
fn q8_0_is_scale_times_quant() {
    let q: Vec<i8> = (0..32).map(|i| i as i8 - 3).collect();
    let mut block = h(0.5).to_vec();
    block.extend(q.iter().map(|&x| x as u8));
    let got = deq(GgmlType::Q8_0, &block);
    let want: Vec<f32> = q.iter().map(|&x| 0.5 * f32::from(x)).collect();
    assert_eq!(got, want);
    assert_eq!(got[0], -1.5);
}

#[test]
fn q4_0_and_q4_1() {
    let q: [u8; 32] = std::array::from_fn(|i| ((i * 7 + 3) % 16) as u8);
    let mut b0 = h(0.25).to_vec();
    b0.extend(pack_nibbles(&q));
    let want: Vec<f32> = q.iter().map(|&x| 0.25 * (f32::from(x) - 8.0)).collect();
    assert_eq!(deq(GgmlType::Q4_0, &b0), want);

    let mut b1 = [h(0.5), h(-1.25)].concat();
    b1.extend(pack_nibbles(&q));
    let want: Vec<f32> = q.iter().map(|&x| 0.5 * f32::from(x) - 1.25).collect();
    assert_eq!(deq(GgmlType::Q4_1, &b1), want);
}

#[test]
fn q5_0_and_q5_1_use_the_high_bits() {
    let q: [u8; 32] = std::array::from_fn(|i| ((i * 11 + 5) % 32) as u8);
    assert!(q.iter().any(|&x| x >= 16) && q.iter().any(|&x| x < 16));
    let mut b0 = h(0.125).to_vec();
    b0.extend(pack_qh(&q));
    b0.extend(pack_nibbles(&q));
    let want: Vec<f32> = q.iter().map(|&x| 0.125 * (f32::from(x) - 16.0)).collect();
    assert_eq!(deq(GgmlType::Q5_0, &b0), want);

    let mut b1 = [h(2.0), h(0.75)].concat();
    b1.extend(pack_qh(&q));
    b1.extend(pack_nibbles(&q));
    let want: Vec<f32> = q.iter().map(|&x| 2.0 * f32::from(x) + 0.75).collect();
    assert_eq!(deq(GgmlType::Q5_1, &b1), want);
}

/// The 12-byte 6-bit (scale, min) packing of Q4_K/Q5_K.
fn pack_k_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
    }
    s
}

/// Scales and mins that use all 6 bits, so the high-bit packing matters.
fn k_scales() -> ([u8; 8], [u8; 8]) {
    (
        [1, 63, 17, 40, 33, 62, 5, 48],
        [0, 9, 63, 22, 50, 16, 47, 31],
    )
}

/// Q4_K/Q5_K quants: group j (of 32) shares bytes 32 * (j / 2) with its pair, low nibble
/// for even j.
fn pack_k_nibbles(q: &[u8]) -> Vec<u8> {
    let mut qs = vec![0u8; 128];
    for (e, &x) in q.iter().enumerate() {
        let (j, l) = (e / 32, e % 32);
        qs[32 * (j / 2) + l] |= (x & 15) << (4 * (j % 2));
    }
    qs
}

#[test]
fn q4_k_uses_packed_scales_and_mins() {
    let (sc, m) = k_scales();
    let q: Vec<u8> = (0..256).map(|i| ((i * 5 + i / 32) % 16) as u8).collect();
    let (d, dmin) = (0.5f32, 0.25f32);
    let mut block = [h(d), h(dmin)].concat();
    block.extend(pack_k_scales(&sc, &m));
    block.extend(pack_k_nibbles(&q));
    let got = deq(GgmlType::Q4_K, &block);
    for (e, &x) in q.iter().enumerate() {
        let j = e / 32;
        let want = d * f32::from(sc[j]) * f32::from(x) - dmin * f32::from(m[j]);
        assert_eq!(got[e], want, "element {e}");
    }
}

#[test]
fn q5_k_adds_a_high_bit_per_group() {
    let (sc, m) = k_scales();
    let q: Vec<u8> = (0..256).map(|i| ((i * 13 + i / 64) % 32) as u8).collect();
    let (d, dmin) = (0.125f32, 0.5f32);
    let mut qh = [0u8; 32];
    for (e, &x) in q.iter().enumerate() {
        qh[e % 32] |= (x >> 4) << (e / 32);
    }
    let mut block = [h(d), h(dmin)].concat();
    block.extend(pack_k_scales(&sc, &m));
    block.extend(qh);
    block.extend(pack_k_nibbles(&q));
    let got = deq(GgmlType::Q5_K, &block);
    for (e, &x) in q.iter().enumerate() {
        let j = e / 32;
        let want = d * f32::from(sc[j]) * f32::from(x) - dmin * f32::from(m[j]);
        assert_eq!(got[e], want, "element {e}");
    }
}

/// The 2-bit layout of Q2_K quants, Q3_K low bits and Q6_K high bits: each half of 128
/// elements owns 32 bytes; element e sits at byte e % 32, bits 2 * ((e % 128) / 32).
fn pack_crumbs(q: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; q.len() / 4];
    for (e, &x) in q.iter().enumerate() {
        out[32 * (e / 128) + e % 32] |= (x & 3) << (2 * ((e % 128) / 32));
    }
    out
}

#[test]
fn q6_k_layout() {
    let q: Vec<u8> = (0..256).map(|i| ((i * 29 + 7) % 64) as u8).collect();
    let scales: Vec<i8> = (0..16).map(|i| (i as i8 - 8) * 9).collect();
    let d = 0.0625f32;
    // Low nibbles: each half owns 64 bytes; element e at byte e % 64, nibble (e % 128) / 64.
    let mut ql = vec![0u8; 128];
    for (e, &x) in q.iter().enumerate() {
        ql[64 * (e / 128) + e % 64] |= (x & 15) << (4 * ((e % 128) / 64));
    }
    let hi: Vec<u8> = q.iter().map(|&x| x >> 4).collect();
    let mut block = ql;
    block.extend(pack_crumbs(&hi));
    block.extend(scales.iter().map(|&s| s as u8));
    block.extend(h(d));
    let got = deq(GgmlType::Q6_K, &block);
    for (e, &x) in q.iter().enumerate() {
        let want = d * f32::from(scales[e / 16]) * (f32::from(x) - 32.0);
        assert_eq!(got[e], want, "element {e}");
    }
}

#[test]
fn q2_k_layout() {
    let q: Vec<u8> = (0..256).map(|i| ((i * 3 + i / 16) % 4) as u8).collect();
    let sc: Vec<u8> = (0..16).map(|i| ((i * 5) % 16) as u8).collect();
    let mn: Vec<u8> = (0..16).map(|i| ((i * 7 + 1) % 16) as u8).collect();
    let (d, dmin) = (0.5f32, 0.125f32);
    let mut block: Vec<u8> = sc.iter().zip(&mn).map(|(&s, &m)| s | (m << 4)).collect();
    block.extend(pack_crumbs(&q));
    block.extend([h(d), h(dmin)].concat());
    let got = deq(GgmlType::Q2_K, &block);
    for (e, &x) in q.iter().enumerate() {
        let g = e / 16;
        let want = d * f32::from(sc[g]) * f32::from(x) - dmin * f32::from(mn[g]);
        assert_eq!(got[e], want, "element {e}");
    }
}

#[test]
fn q3_k_layout() {
    // Quants -4..=3: low 2 bits of q + 4, and a high bit that is set when q >= 0.
    let q: Vec<i32> = (0..256).map(|i| ((i * 5 + i / 32) % 8) - 4).collect();
    let scales: Vec<u8> = (0..16).map(|i| ((i * 23 + 2) % 64) as u8).collect();
    let d = 0.25f32;
    let mut hmask = [0u8; 32];
    for (e, &x) in q.iter().enumerate() {
        hmask[e % 32] |= u8::from(x >= 0) << (e / 32);
    }
    let low: Vec<u8> = q.iter().map(|&x| (x & 3) as u8).collect();
    let mut packed = [0u8; 12];
    for (i, &s) in scales.iter().enumerate() {
        packed[i % 8] |= (s & 15) << (4 * (i / 8));
        packed[8 + i % 4] |= (s >> 4) << (2 * (i / 4));
    }
    let mut block = hmask.to_vec();
    block.extend(pack_crumbs(&low));
    block.extend(packed);
    block.extend(h(d));
    let got = deq(GgmlType::Q3_K, &block);
    for (e, &x) in q.iter().enumerate() {
        let want = d * (f32::from(scales[e / 16]) - 32.0) * x as f32;
        assert_eq!(got[e], want, "element {e}");
    }
}

#[test]
fn q8_k_is_f32_scale_times_quant() {
    let q: Vec<i8> = (0..256).map(|i| (i - 128) as i8).collect();
    let mut block = 0.375f32.to_le_bytes().to_vec();
    block.extend(q.iter().map(|&x| x as u8));
    block.extend([0u8; 32]);
    let want: Vec<f32> = q.iter().map(|&x| 0.375 * f32::from(x)).collect();
    assert_eq!(deq(GgmlType::Q8_K, &block), want);
}

#[test]
fn sizes_must_be_whole_blocks() {
    let err = dequantize(GgmlType::Q8_0, &[0u8; 34], 16).unwrap_err();
    assert!(err.contains("block"), "{err}");
    let err = dequantize(GgmlType::Q8_0, &[0u8; 33], 32).unwrap_err();
    assert!(err.contains("34 bytes"), "{err}");
}

#[test]
fn many_blocks_in_parallel_match_one_by_one() {
    // Several rayon chunks of Q4_1 blocks with varying scales.
    let n_blocks = 5000;
    let mut bytes = Vec::new();
    for b in 0..n_blocks {
        let q: [u8; 32] = std::array::from_fn(|i| ((i + b) % 16) as u8);
        bytes.extend([h(b as f32 / 64.0), h(-(b as f32) / 128.0)].concat());
        bytes.extend(pack_nibbles(&q));
    }
    let all = deq(GgmlType::Q4_1, &bytes);
    let bb = GgmlType::Q4_1.block_bytes();
    for b in [0, 1, 2047, 2048, 4999] {
        let one = deq(GgmlType::Q4_1, &bytes[b * bb..(b + 1) * bb]);
        assert_eq!(&all[b * 32..(b + 1) * 32], &one[..], "block {b}");
    }
}

#[test]
fn scales_convert_from_half_exactly() {
    for bits in 0..=u16::MAX {
        let want = f16::from_bits(bits).to_f32();
        let got = super::super::dequant::f16_to_f32(bits);
        if want.is_nan() {
            assert!(got.is_nan(), "{bits:#06x}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{bits:#06x}");
        }
    }
}
