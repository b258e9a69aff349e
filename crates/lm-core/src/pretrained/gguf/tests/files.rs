//! Whole files: writer round trips and the errors of malformed files.

use std::path::{Path, PathBuf};

use half::f16;

use super::super::{GgmlType, GgufFile, GgufValue, GgufWriter};
use crate::error::LmError;

fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn every_value() -> Vec<(&'static str, GgufValue)> {
    use GgufValue::*;
    vec![
        ("t.u8", U8(200)),
        ("t.i8", I8(-100)),
        ("t.u16", U16(60000)),
        ("t.i16", I16(-30000)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-2_000_000_000)),
        ("t.u64", U64(u64::MAX - 1)),
        ("t.i64", I64(i64::MIN + 1)),
        ("t.f32", F32(1e-6)),
        ("t.f64", F64(1e300)),
        ("t.bool", Bool(true)),
        ("t.str", String("héllo <|im_end|>".into())),
        (
            "t.strs",
            Array(vec![
                String("a".into()),
                String("".into()),
                String("Ġb".into()),
            ]),
        ),
        ("t.i32s", Array(vec![I32(1), I32(-2), I32(3)])),
        (
            "t.nested",
            Array(vec![Array(vec![U8(1)]), Array(vec![U8(2), U8(3)])]),
        ),
        ("t.empty", Array(vec![])),
        ("general.architecture", String("llama".into())),
    ]
}

#[test]
fn round_trip_metadata_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "rt.gguf");
    let a: Vec<f32> = (0..6).map(|i| i as f32 * 0.3 - 1.0).collect();
    let b: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    // Several rayon chunks of Q8_0 blocks.
    let c: Vec<f32> = (0..256 * 1024)
        .map(|i| ((i % 977) as f32 - 488.0) / 97.0)
        .collect();
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.set(k, v);
    }
    w.add_tensor("a", &[2, 3], &a, GgmlType::F32).unwrap();
    w.add_tensor("b", &[2, 32], &b, GgmlType::F16).unwrap();
    w.add_tensor("c", &[256, 1024], &c, GgmlType::Q8_0).unwrap();
    w.write(&path).unwrap();

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.path(), path);
    assert_eq!(f.version(), 3);
    for (k, v) in every_value() {
        assert_eq!(f.get(k), Some(&v), "{k}");
    }
    assert_eq!(f.metadata().len(), every_value().len());
    assert_eq!(f.u64("t.u8").unwrap(), 200);
    assert_eq!(f.u64("t.u64").unwrap(), u64::MAX - 1);
    assert_eq!(f.f32("t.f32").unwrap(), 1e-6);
    assert_eq!(f.f64("t.u16").unwrap(), 60000.0);
    assert!(f.bool("t.bool").unwrap());
    assert_eq!(f.str("t.str").unwrap(), "héllo <|im_end|>");
    assert_eq!(f.str_array("t.strs").unwrap(), ["a", "", "Ġb"]);
    assert_eq!(f.i32_array("t.i32s").unwrap(), [1, -2, 3]);
    assert_eq!(f.architecture().unwrap(), "llama");

    let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    for t in f.tensors() {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
    assert_eq!(f.tensor_info("c").unwrap().ggml_type, GgmlType::Q8_0);
    assert_eq!(f.tensor_f32("a").unwrap(), (a, vec![2, 3]));
    let (got_b, dims) = f.tensor_f32("b").unwrap();
    assert_eq!(dims, [2, 32]);
    let want_b: Vec<f32> = b.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    assert_eq!(got_b, want_b);
    let (got_c, dims) = f.tensor_f32("c").unwrap();
    assert_eq!(dims, [256, 1024]);
    assert_eq!(got_c, q8_0_reference(&c));
}

/// Q8_0 by its definition, block by block: d = max|x| / 127 rounded to f16,
/// x' = round(x * 127 / max|x|) * d.
fn q8_0_reference(x: &[f32]) -> Vec<f32> {
    x.chunks(32)
        .flat_map(|block| {
            let amax = block.iter().map(|v| v.abs()).fold(0.0, f32::max);
            let d = amax / 127.0;
            let d16 = f16::from_f32(d).to_f32();
            block.iter().map(move |&v| (v * (1.0 / d)).round() * d16)
        })
        .collect()
}

#[test]
fn q8_0_round_trip_error_is_within_half_a_step() {
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 1.7).cos() * 0.02).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "q8.gguf");
    let mut w = GgufWriter::new();
    w.add_tensor("x", &[64], &x, GgmlType::Q8_0).unwrap();
    w.write(&path).unwrap();
    let (y, _) = GgufFile::open(&path).unwrap().tensor_f32("x").unwrap();
    for (block_x, block_y) in x.chunks(32).zip(y.chunks(32)) {
        let step = block_x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (a, b) in block_x.iter().zip(block_y) {
            assert!(
                (a - b).abs() <= step * 0.5 + step * 1e-3,
                "{a} vs {b} (step {step})"
            );
        }
    }
}

#[test]
fn file_without_tensors_may_end_before_the_aligned_data_offset() {
    // Vocab-only GGUFs end right after the header.
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "vocab.gguf");
    let mut w = GgufWriter::new();
    w.set("tokenizer.ggml.model", GgufValue::String("gpt2".into()));
    w.write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert!(f.data_offset() >= std::fs::metadata(&path).unwrap().len());
    assert!(f.tensors().is_empty());
}

fn bad_reason(result: Result<GgufFile, LmError>) -> String {
    match result {
        Err(LmError::BadFile { reason, .. }) => reason,
        other => panic!("expected BadFile, got {other:?}"),
    }
}

fn one_tensor_file(dir: &tempfile::TempDir) -> (PathBuf, Vec<u8>) {
    let mut w = GgufWriter::new();
    w.set("general.architecture", GgufValue::String("llama".into()));
    w.add_tensor("blk.0.w", &[4, 32], &[0.5; 128], GgmlType::F32)
        .unwrap();
    w.add_tensor("blk.1.w", &[4, 32], &[0.25; 128], GgmlType::F16)
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    (tmp(dir, "x.gguf"), bytes)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_magic_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes) = one_tensor_file(&dir);
    bytes[0] = b'X';
    write(&path, &bytes);
    assert!(bad_reason(GgufFile::open(&path)).contains("not a GGUF file"));
    bytes[0] = b'G';
    bytes[4] = 2;
    write(&path, &bytes);
    assert_eq!(GgufFile::open(&path).unwrap().version(), 2);
    bytes[4] = 4;
    write(&path, &bytes);
    assert!(bad_reason(GgufFile::open(&path)).contains("version 4"));
}

#[test]
fn truncated_file_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = one_tensor_file(&dir);
    write(&path, &bytes[..bytes.len() - 10]);
    let reason = bad_reason(GgufFile::open(&path));
    assert!(
        reason.contains("`blk.1.w`") && reason.contains("truncated"),
        "{reason}"
    );
    // Cut inside the header: the message says what was being read.
    write(&path, &bytes[..40]);
    let reason = bad_reason(GgufFile::open(&path));
    assert!(reason.contains("file ends inside"), "{reason}");
}

#[test]
fn unknown_type_id_names_tensor_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes) = one_tensor_file(&dir);
    // The type id follows the name, n_dims (u32) and two u64 dims.
    let name = b"blk.1.w";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 16;
    assert_eq!(bytes[at..at + 4], GgmlType::F16.id().to_le_bytes());
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    write(&path, &bytes);
    let reason = bad_reason(GgufFile::open(&path));
    assert!(
        reason.contains("`blk.1.w`") && reason.contains("99"),
        "{reason}"
    );
}

#[test]
fn missing_or_mistyped_keys_name_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = one_tensor_file(&dir);
    write(&path, &bytes);
    let f = GgufFile::open(&path).unwrap();
    match f.u64("llama.block_count") {
        Err(e @ LmError::BadFile { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("llama.block_count") && msg.contains("x.gguf"),
                "{msg}"
            );
        }
        other => panic!("expected BadFile, got {other:?}"),
    }
    let msg = f.u64("general.architecture").unwrap_err().to_string();
    assert!(
        msg.contains("general.architecture") && msg.contains("integer"),
        "{msg}"
    );
    let msg = f.str_array("general.architecture").unwrap_err().to_string();
    assert!(msg.contains("array"), "{msg}");
    match f.tensor_f32("nope") {
        Err(LmError::MissingTensor { tensor, file }) => {
            assert_eq!(tensor, "nope");
            assert_eq!(file, path);
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn writer_rejects_what_it_cannot_write() {
    let mut w = GgufWriter::new();
    assert!(
        w.add_tensor("w", &[2, 32], &[0.0; 63], GgmlType::F32)
            .is_err()
    );
    assert!(
        w.add_tensor("w", &[2, 16], &[0.0; 32], GgmlType::Q8_0)
            .is_err()
    );
    assert!(
        w.add_tensor("w", &[32], &[0.0; 32], GgmlType::Q4_K)
            .is_err()
    );
    w.add_tensor("w", &[32], &[0.0; 32], GgmlType::F32).unwrap();
    assert!(w.add_tensor("w", &[32], &[0.0; 32], GgmlType::F32).is_err());
    w.set(
        "mixed",
        GgufValue::Array(vec![GgufValue::U8(1), GgufValue::I8(1)]),
    );
    let msg = w.to_bytes().err().unwrap().to_string();
    assert!(msg.contains("mixed"), "{msg}");
}

#[test]
fn custom_alignment_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "a.gguf");
    let mut w = GgufWriter::new();
    w.set("general.alignment", GgufValue::U32(64));
    w.add_tensor("a", &[3], &[1.0, 2.0, 3.0], GgmlType::F32)
        .unwrap();
    w.add_tensor("b", &[2], &[4.0, 5.0], GgmlType::F32).unwrap();
    w.write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensor_info("b").unwrap().offset, 64);
    assert_eq!(f.tensor_f32("b").unwrap().0, [4.0, 5.0]);
}
