//! Unit tests on a small in-memory byte-level vocabulary (the asset-based tests against
//! llama.cpp's vectors and real models are in `tests/pretrained_tokenizer.rs`).

use super::*;

/// GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for themselves, the others
/// are moved to U+0100 upward in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).unwrap()
}

fn bl(s: &str) -> String {
    s.bytes().map(byte_char).collect()
}

/// 256 byte tokens, a few merges, `<|im_end|>` (control), `<tool>` (user-defined).
fn tiny(pre: &str) -> GgufVocab {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let merges: Vec<String> = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    for m in &merges {
        tokens.push(m.replace(' ', ""));
    }
    tokens.push("<|im_end|>".into());
    tokens.push("<tool>".into());
    let mut token_types = vec![1; tokens.len()];
    let n = token_types.len();
    token_types[n - 2] = 3;
    token_types[n - 1] = 4;
    GgufVocab {
        source: "tiny.gguf".into(),
        model: "gpt2".into(),
        pre: pre.into(),
        tokens,
        token_types,
        merges,
        bos: Some(0),
        eos: Some(n as u32 - 2),
        add_bos: None,
        chat_template: Some("{{ messages[0].content }}".into()),
    }
}

fn tok(v: &GgufVocab) -> TextTokenizer {
    TextTokenizer::from_gguf_vocab(v).unwrap()
}

#[test]
fn merges_specials_and_decode() {
    let t = tok(&tiny("gpt-2"));
    let hello = t.token_id("hello").unwrap();
    let wo = t.token_id(&bl(" wo")).unwrap();
    let im_end = t.token_id("<|im_end|>").unwrap();
    let tool = t.token_id("<tool>").unwrap();
    let r = t.token_id("r").unwrap();
    let ids = t.encode("hello wor<|im_end|><tool>", false).unwrap();
    assert_eq!(ids, vec![hello, wo, r, im_end, tool]);
    assert_eq!(t.decode(&ids, false).unwrap(), "hello wor<|im_end|><tool>");
    // Control tokens are skipped, user-defined ones kept (as in Hugging Face's Qwen files).
    assert_eq!(t.decode(&ids, true).unwrap(), "hello wor<tool>");
    assert_eq!(t.vocab_size(), 256 + 6 + 2);
    assert_eq!(t.eos_token_ids(), vec![im_end]);
    assert_eq!(t.bos_token_id(), Some(0));
    assert_eq!(t.chat_template(), Some("{{ messages[0].content }}"));
}

#[test]
fn bos_follows_add_bos_token_then_the_pre_tokenizer_default() {
    // llama-bpe adds BOS unless the file says otherwise; gpt-2 does not.
    let llama = tok(&tiny("llama-bpe"));
    assert_eq!(llama.encode("he", true).unwrap(), vec![0, 256]);
    assert_eq!(llama.encode("he", false).unwrap(), vec![256]);
    assert_eq!(tok(&tiny("gpt-2")).encode("he", true).unwrap(), vec![256]);
    let mut off = tiny("llama-bpe");
    off.add_bos = Some(false);
    assert_eq!(tok(&off).encode("he", true).unwrap(), vec![256]);
}

/// The pre-tokens of `text` (in byte-level form) under the rule `pre`.
fn splits(pre: &str, text: &str) -> Vec<String> {
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
    let pt = PreKind::from_name(pre).unwrap().build().unwrap();
    let mut s = PreTokenizedString::from(text);
    pt.pre_tokenize(&mut s).unwrap();
    s.get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(piece, _, _)| piece.to_string())
        .collect()
}

#[test]
fn pre_tokenizers_split_as_their_models_do() {
    let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let each_digit = v(&["abc", "Ġ", "1", "2", "3", "4", "5"]);
    assert_eq!(splits("qwen2", "abc 12345"), each_digit);
    assert_eq!(splits("smollm", "abc 12345"), each_digit);
    assert_eq!(
        splits("llama-bpe", "abc 12345"),
        v(&["abc", "Ġ", "123", "45"])
    );
    assert_eq!(splits("gpt-2", "abc 12345"), v(&["abc", "Ġ12345"]));
    assert_eq!(
        splits("default", "abc 12345"),
        v(&["abc", "Ġ", "123", "45"])
    );
    // Llama 3 / Qwen2 contractions ignore case; GPT-2's do not.
    assert_eq!(splits("llama-bpe", "I'M"), v(&["I", "'M"]));
    assert_eq!(splits("qwen2", "I'M"), v(&["I", "'M"]));
    assert_eq!(splits("gpt-2", "I'M"), v(&["I", "'", "M"]));
    assert_eq!(splits("llama-bpe", "x\n\n  y"), v(&["x", "ĊĊ", "Ġ", "Ġy"]));
    assert!(PreKind::from_name("qwen2").unwrap().nfc());
    assert!(PreKind::from_name("llama-bpe").unwrap().ignore_merges());
    assert!(!PreKind::from_name("smollm").unwrap().ignore_merges());
    assert_eq!(PreKind::from_name(""), Some(PreKind::Default));
    assert_eq!(PreKind::from_name("tekken"), None);
}

#[test]
fn stream_holds_partial_characters() {
    let t = tok(&tiny("gpt-2"));
    let text = "hi 😀 中";
    let ids = t.encode(text, false).unwrap();
    let mut s = t.stream(false);
    let mut out = Vec::new();
    for &id in &ids {
        out.push(s.push(id).unwrap());
    }
    // "h", "i", " " come out at once; the emoji's 4 byte tokens release it on the last one.
    let pieces: Vec<&str> = out.iter().flatten().map(String::as_str).collect();
    assert_eq!(pieces.concat(), text);
    assert!(
        pieces.contains(&" 😀") || pieces.contains(&"😀"),
        "{pieces:?}"
    );
    assert!(out.iter().filter(|o| o.is_none()).count() >= 3 + 2);
    assert_eq!(s.finish().unwrap(), None);
    // A cut-off character comes out of finish() as U+FFFD, like decode.
    let mut s = t.stream(false);
    let cut = &ids[..ids.len() - 1];
    let streamed: String = cut.iter().filter_map(|&i| s.push(i).unwrap()).collect();
    let rest = s.finish().unwrap().unwrap_or_default();
    assert_eq!(streamed + &rest, t.decode(cut, false).unwrap());
}

#[test]
fn stream_skips_special_tokens_when_asked() {
    let t = tok(&tiny("gpt-2"));
    let ids = t.encode("he<|im_end|>ll", false).unwrap();
    let mut s = t.stream(true);
    let text: String = ids.iter().filter_map(|&i| s.push(i).unwrap()).collect();
    assert_eq!(text, "hell");
}

#[test]
fn bad_vocabularies_name_the_file_and_key() {
    let check = |v: GgufVocab, needles: &[&str]| {
        let msg = TextTokenizer::from_gguf_vocab(&v).unwrap_err().to_string();
        for n in needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
    };
    let mut v = tiny("gpt-2");
    v.model = "llama".into();
    check(v, &["tiny.gguf", "tokenizer.ggml.model", "'llama'"]);
    let mut v = tiny("gpt-2");
    v.pre = "tekken".into();
    check(v, &["tiny.gguf", "tokenizer.ggml.pre", "'tekken'", "qwen2"]);
    let mut v = tiny("gpt-2");
    v.token_types.pop();
    check(
        v,
        &["tokenizer.ggml.token_type", "263 entries for 264 tokens"],
    );
    let mut v = tiny("gpt-2");
    v.merges.push("nospace".into());
    check(v, &["tokenizer.ggml.merges", "nospace"]);
    let mut v = tiny("gpt-2");
    v.eos = Some(10_000);
    check(v, &["tokenizer.ggml.eos_token_id", "10000"]);
    let mut v = tiny("gpt-2");
    v.tokens.clear();
    v.token_types.clear();
    check(v, &["tokenizer.ggml.tokens", "empty"]);
    let mut v = tiny("gpt-2");
    (v.add_bos, v.bos) = (Some(true), None);
    check(v, &["tokenizer.ggml.add_bos_token"]);
    let t = tok(&tiny("gpt-2"));
    let msg = t.decode(&[99_999], false).unwrap_err().to_string();
    assert!(msg.contains("99999") && msg.contains("tiny.gguf"), "{msg}");
}
