//! Comparison with dumps made by the `gguf` Python package (`gguf.quants.dequantize`), for
//! checking the formulas by hand: `GGUF_REF_DIR=dir cargo test -p lm-core --lib
//! gguf::tests::reference -- --ignored --nocapture`. `dir/index.tsv` lines are either
//! `model<TAB>gguf path<TAB>tensor<TAB>expected.f32` or
//! `blocks<TAB>type name<TAB>raw blocks file<TAB>expected.f32` or
//! `quant<TAB>Q8_0<TAB>input.f32<TAB>expected blocks file` (the writer's quantiser; paths
//! relative to dir; `.f32` files are raw little-endian f32).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::super::writer::quantize_q8_0;
use super::super::{GgmlType, GgufFile, dequantize};

fn read_f32(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn type_named(name: &str) -> GgmlType {
    (0..64)
        .filter_map(GgmlType::from_id)
        .find(|t| t.name() == name)
        .expect("known type")
}

/// Distance in units in the last place (0 for bit-identical values, NaN = NaN).
fn ulps(a: f32, b: f32) -> u64 {
    if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || a == b {
        return 0;
    }
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        i64::from(if i < 0 { i32::MIN - i } else { i })
    };
    key(a).abs_diff(key(b))
}

#[test]
#[ignore = "needs dumps from the gguf Python package in $GGUF_REF_DIR"]
fn matches_python_gguf_dumps() {
    let dir = PathBuf::from(std::env::var_os("GGUF_REF_DIR").expect("GGUF_REF_DIR"));
    let index = std::fs::read_to_string(dir.join("index.tsv")).expect("index.tsv");
    let mut files: BTreeMap<String, GgufFile> = BTreeMap::new();
    // Per type: (values compared, max |diff|, max ulps).
    let mut stats: BTreeMap<String, (usize, f32, u64)> = BTreeMap::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[0] == "quant" {
            let x = read_f32(&dir.join(cols[2]));
            let got = quantize_q8_0("x", &[x.len()], &x).unwrap();
            let want = std::fs::read(dir.join(cols[3])).unwrap();
            assert!(got == want, "{line}: Q8_0 quantisation differs");
            println!("Q8_0 quantisation of {} values: identical bytes", x.len());
            continue;
        }
        let (ty, got) = match cols[0] {
            "model" => {
                let f = files
                    .entry(cols[1].to_string())
                    .or_insert_with(|| GgufFile::open(&PathBuf::from(cols[1])).unwrap());
                let ty = f.tensor_info(cols[2]).unwrap().ggml_type;
                (ty, f.tensor_f32(cols[2]).unwrap().0)
            }
            _ => {
                let ty = type_named(cols[1]);
                let raw = std::fs::read(dir.join(cols[2])).unwrap();
                let n = raw.len() / ty.block_bytes() * ty.block_elems();
                (ty, dequantize(ty, &raw, n).unwrap())
            }
        };
        let want = read_f32(&dir.join(cols[3]));
        assert_eq!(got.len(), want.len(), "{line}");
        let s = stats
            .entry(format!("{ty} ({})", cols[0]))
            .or_insert((0, 0.0, 0));
        for (&a, &b) in got.iter().zip(&want) {
            s.0 += 1;
            if a.is_finite() && b.is_finite() {
                s.1 = s.1.max((a - b).abs());
            }
            s.2 = s.2.max(ulps(a, b));
        }
    }
    for (ty, (n, diff, ulp)) in &stats {
        println!("{ty}: {n} values, max |diff| {diff:e}, max ulps {ulp}");
    }
    assert!(!stats.is_empty());
    assert!(stats.values().all(|s| s.2 <= 1), "differences beyond 1 ulp");
}
