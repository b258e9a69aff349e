//! Ports of the course's tests/test_tokenizer.py on the GPT-2 fixtures: ids must equal
//! tiktoken's GPT-2 encoding (stored expected ids, and `tiktoken-rs` as a live oracle) and
//! decoding must round-trip; plus streaming and error behaviour.

mod common;

use std::io::BufRead;

use lm_basics::Tokenizer;
use lm_basics::tokenizer::files::from_files;
use serde_json::Value;

const EOT: &str = "<|endoftext|>";

fn gpt2(specials: &[&str]) -> Tokenizer {
    let f = common::fixtures();
    let specials: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    from_files(
        &f.join("gpt2_vocab.json"),
        &f.join("gpt2_merges.txt"),
        &specials,
    )
    .unwrap()
}

/// (text, expected ids) of a key of the course's stored tiktoken results.
fn expected(key: &str) -> (String, Vec<u32>) {
    let path = common::shared().join("cs336/a1/generated/tiktoken_gpt2_expected_ids.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = &all[key];
    let text = match case["text"].as_str() {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(
            common::shared()
                .join("cs336")
                .join(case["file"].as_str().unwrap()),
        )
        .unwrap(),
    };
    let ids = case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    (text, ids)
}

fn tiktoken_gpt2(text: &str) -> Vec<u32> {
    tiktoken_rs::r50k_base_singleton().encode_with_special_tokens(text)
}

fn roundtrip(tok: &Tokenizer, text: &str) {
    let ids = tok.encode(text);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

/// `*_matches_tiktoken`: ids equal the stored tiktoken ids and the live oracle, and decode back.
fn matches_tiktoken(key: &str, specials: &[&str]) {
    let tok = gpt2(specials);
    let (text, ids) = expected(key);
    let ours = tok.encode(&text);
    assert_eq!(ours, ids, "{key}");
    assert_eq!(ours, tiktoken_gpt2(&text), "{key} vs tiktoken-rs");
    assert_eq!(tok.decode(&ours).unwrap(), text);
}

#[test]
fn test_roundtrip_empty_and_matches_tiktoken() {
    roundtrip(&gpt2(&[]), "");
    matches_tiktoken("empty", &[]);
}

#[test]
fn test_single_character() {
    let tok = gpt2(&[]);
    roundtrip(&tok, "s");
    matches_tiktoken("single_character", &[]);
    assert_eq!(tok.decode(&tok.encode("s")).unwrap(), "s");
}

#[test]
fn test_single_unicode_character() {
    roundtrip(&gpt2(&[]), "🙃");
    matches_tiktoken("single_unicode_character", &[]);
}

#[test]
fn test_ascii_string() {
    roundtrip(&gpt2(&[]), "Hello, how are you?");
    let tok = gpt2(&[EOT]);
    let pieces: Vec<String> = tok
        .encode("Hello, how are you?")
        .iter()
        .map(|&i| tok.decode(&[i]).unwrap())
        .collect();
    assert_eq!(pieces, ["Hello", ",", " how", " are", " you", "?"]);
    matches_tiktoken("ascii_string", &[EOT]);
}

#[test]
fn test_unicode_string() {
    roundtrip(&gpt2(&[]), "Héllò hôw are ü? 🙃");
    matches_tiktoken("unicode_string", &[]);
}

#[test]
fn test_unicode_string_with_special_tokens() {
    let tok = gpt2(&[EOT]);
    let (text, _) = expected("unicode_string_with_special_tokens");
    roundtrip(&tok, &text);
    let pieces: Vec<String> = tok
        .encode(&text)
        .iter()
        .map(|&i| tok.decode(&[i]).unwrap())
        .collect();
    assert_eq!(
        pieces.iter().filter(|p| *p == EOT).count(),
        3,
        "each special stays one token"
    );
    matches_tiktoken("unicode_string_with_special_tokens", &[EOT]);
}

#[test]
fn test_overlapping_special_tokens() {
    let double = "<|endoftext|><|endoftext|>";
    let tok = gpt2(&[EOT, double]);
    let text = "Hello, how <|endoftext|><|endoftext|> are you?<|endoftext|>";
    let ids = tok.encode(text);
    let pieces: Vec<String> = ids.iter().map(|&i| tok.decode(&[i]).unwrap()).collect();
    assert_eq!(pieces.iter().filter(|p| *p == EOT).count(), 1);
    assert_eq!(pieces.iter().filter(|p| *p == double).count(), 1);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn test_address_german_tinystories() {
    for (key, specials) in [
        ("address", &[][..]),
        ("german", &[][..]),
        ("tinystories_sample", &[EOT][..]),
    ] {
        let (text, _) = expected(key);
        roundtrip(&gpt2(specials), &text);
        matches_tiktoken(key, specials);
    }
}

#[test]
fn test_encode_iterable_tinystories_matches_tiktoken() {
    let tok = gpt2(&[EOT]);
    let (text, ids) = expected("tinystories_sample");
    // Python iterates a file by lines, each with its newline.
    let streamed: Vec<u32> = tok.encode_iterable(text.split_inclusive('\n')).collect();
    assert_eq!(streamed, ids);
    assert_eq!(tok.decode(&streamed).unwrap(), text);
}

#[test]
fn encode_iterable_is_chunking_invariant() {
    let tok = gpt2(&[EOT]);
    for text in [
        "a\n\n\nb",
        "x  \n\n y <|endoftext|>z",
        "  lead",
        "trail  ",
        "<|endoftext|><|endoftext|>",
    ] {
        let whole = tok.encode(text);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        assert_eq!(
            tok.encode_iterable(&chars).collect::<Vec<_>>(),
            whole,
            "char by char {text:?}"
        );
        for cut in 0..=text.len() {
            if text.is_char_boundary(cut) {
                let parts = [&text[..cut], &text[cut..]];
                assert_eq!(
                    tok.encode_iterable(parts).collect::<Vec<_>>(),
                    whole,
                    "cut {cut} of {text:?}"
                );
            }
        }
    }
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The course's memory test streams a 5 MB file under an RLIMIT of RSS + 1 MB; here: streaming
/// the 24 MB English corpus raises peak RSS by far less than the file's size.
#[test]
fn test_encode_iterable_memory_usage() {
    let Some(path) = common::asset("corpora/english-prose-train.txt") else {
        eprintln!(
            "skipped: $LM_ASSETS/corpora/english-prose-train.txt absent (run shared/fetch-assets)"
        );
        return;
    };
    let tok = gpt2(&[EOT]);
    let size_kb = std::fs::metadata(&path).unwrap().len() / 1024;
    let before = peak_rss_kb();
    let lines = std::io::BufReader::new(std::fs::File::open(&path).unwrap())
        .lines()
        .map(|l| l.unwrap() + "\n");
    let count = tok.encode_iterable(lines).count();
    let grown = peak_rss_kb().saturating_sub(before);
    assert!(count > 1_000_000, "{count} tokens");
    assert!(
        grown < size_kb / 2,
        "peak RSS grew {grown} kB streaming a {size_kb} kB file"
    );
}

#[test]
fn decode_replaces_invalid_utf8_and_rejects_unknown_ids() {
    let tok = gpt2(&[]);
    // Byte tokens: 0xE2 0x82 is a truncated 3-byte sequence.
    let e2 = tok.token_id(&[0xE2]).unwrap();
    let x82 = tok.token_id(&[0x82]).unwrap();
    let a = tok.token_id(b"a").unwrap();
    assert_eq!(tok.decode(&[e2, x82, a]).unwrap(), "\u{FFFD}a");
    let err = tok.decode(&[70_000]).unwrap_err().to_string();
    assert!(err.contains("70000"), "{err}");
}

#[test]
fn bad_tokenizer_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::fixtures();
    let err = from_files(
        &dir.path().join("nope.json"),
        &f.join("gpt2_merges.txt"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope.json"), "{err}");
    let bad_vocab = dir.path().join("vocab.json");
    std::fs::write(&bad_vocab, "[1, 2]").unwrap();
    let err = from_files(&bad_vocab, &f.join("gpt2_merges.txt"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vocab.json") && err.contains("token → id"),
        "{err}"
    );
    let bad_merges = dir.path().join("merges.txt");
    std::fs::write(&bad_merges, "Ġ t\nĠ zzzzqqq\n").unwrap();
    let err = from_files(&f.join("gpt2_vocab.json"), &bad_merges, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("merge 1"), "{err}");
}

#[test]
fn encode_file_writes_little_endian_uint16_equal_to_encode() {
    use lm_basics::tokenizer::encode_file::{TokenDtype, encode_file, encode_parallel};
    let tok = gpt2(&[EOT]);
    let dir = tempfile::tempdir().unwrap();
    let input = common::fixtures().join("tinystories_sample.txt");
    let out = dir.path().join("ids.bin");
    let stats = encode_file(&tok, &input, &out, false).unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let expected = tok.encode(&text);
    let bytes = std::fs::read(&out).unwrap();
    let ids: Vec<u32> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(stats.tokens as usize, expected.len());
    assert_eq!(stats.dtype, TokenDtype::U16);
    assert_eq!(encode_parallel(&tok, &text), expected);
    assert_eq!(TokenDtype::for_vocab(65_536), TokenDtype::U16);
    assert_eq!(TokenDtype::for_vocab(65_537), TokenDtype::U32);
    // Only the output file is left in the directory (the temp file was renamed).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"ok \xff").unwrap();
    let err = encode_file(&tok, &bad, &dir.path().join("x.bin"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("latin1.txt") && err.contains("byte 3"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.bin").exists(),
        "no partial output on error"
    );
}
