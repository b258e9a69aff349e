//! HTML → text: the course's fixture exactly, charset handling, and every real page of a few
//! languages without a panic.

mod common;
use common::{html_pages, shared};

use lm_data::html::{
    charset::CharsetSource, decode_html, extract_text_from_html_bytes,
    extract_text_with_content_type,
};

/// The course's `test_extract_text_from_html_bytes`.
#[test]
fn moby_matches_the_course_output_exactly() {
    let fixtures = shared().join("cs336/a4/fixtures");
    let html = std::fs::read(fixtures.join("moby.html")).unwrap();
    let expected = std::fs::read_to_string(fixtures.join("moby_extracted.txt")).unwrap();
    assert_eq!(extract_text_from_html_bytes(&html), expected);
}

fn page(charset_meta: &str, body: &str) -> String {
    format!("<html><head>{charset_meta}<title>t</title></head><body><p>{body}</p></body></html>")
}

#[test]
fn windows_1252_declared_and_undeclared() {
    let text = "Café déjà vu — “quoted” naïve façade, 20 € à la carte. Übermäßig schön!";
    let plain = page("", text);
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&plain);
    // Undeclared: not UTF-8, so detection must find a Latin encoding.
    assert_eq!(extract_text_from_html_bytes(&bytes), text);
    let with_meta = page("<meta charset=\"iso-8859-1\">", text);
    let (declared, _, _) = encoding_rs::WINDOWS_1252.encode(&with_meta);
    assert_eq!(decode_html(&declared, None).source, CharsetSource::MetaTag);
    assert_eq!(extract_text_from_html_bytes(&declared), text);
    // The HTTP header wins over a wrong page declaration.
    let wrong_meta = page("<meta charset=utf-8>", text);
    let (wrong, _, _) = encoding_rs::WINDOWS_1252.encode(&wrong_meta);
    assert_eq!(
        extract_text_with_content_type(&wrong, Some("text/html; charset=windows-1252")),
        text
    );
    // Without the header, bytes that contradict the declaration are detected instead.
    assert_eq!(decode_html(&wrong, None).source, CharsetSource::Detected);
    assert_eq!(extract_text_from_html_bytes(&wrong), text);
}

#[test]
fn shift_jis_and_gbk_declared_and_undeclared() {
    let japanese = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。";
    let chinese = "欢迎来到我们的网站。这是一个关于语言模型的课程，我们从零开始实现所有的组件，包括分词器和训练。";
    for (encoding, label, text) in [
        (encoding_rs::SHIFT_JIS, "shift_jis", japanese),
        (encoding_rs::GBK, "gbk", chinese),
    ] {
        let meta =
            format!("<meta http-equiv=\"Content-Type\" content=\"text/html; charset={label}\">");
        let with_meta = page(&meta, text);
        let (declared, _, _) = encoding.encode(&with_meta);
        let decoded = decode_html(&declared, None);
        assert_eq!(
            (decoded.encoding, decoded.source),
            (encoding, CharsetSource::MetaTag)
        );
        assert_eq!(extract_text_from_html_bytes(&declared), text);
        let plain = page("", text);
        let (undeclared, _, _) = encoding.encode(&plain);
        let decoded = decode_html(&undeclared, None);
        assert_eq!(decoded.source, CharsetSource::Detected);
        assert_eq!(extract_text_from_html_bytes(&undeclared), text, "{label}");
    }
}

#[test]
fn bom_and_plain_utf8() {
    let mut bytes = vec![0xef, 0xbb, 0xbf];
    bytes.extend_from_slice(page("<meta charset=windows-1252>", "naïve").as_bytes());
    assert_eq!(decode_html(&bytes, None).source, CharsetSource::Bom);
    assert_eq!(extract_text_from_html_bytes(&bytes), "naïve");
    let (utf16, _, _) = encoding_rs::UTF_16LE.encode("x"); // encode() never emits UTF-16
    assert_eq!(utf16, b"x".as_slice());
    let mut utf16le = vec![0xff, 0xfe];
    for unit in page("", "日本").encode_utf16() {
        utf16le.extend_from_slice(&unit.to_le_bytes());
    }
    assert_eq!(extract_text_from_html_bytes(&utf16le), "日本");
    assert_eq!(extract_text_from_html_bytes(b"\xff\xfe\x00"), "\u{fffd}");
    assert_eq!(extract_text_from_html_bytes(b""), "");
}

/// Every page of a few languages (different scripts) gives non-empty text without a panic.
#[test]
fn real_pages_of_several_languages() {
    let Some(all) = html_pages() else { return };
    let languages = ["ja", "zh", "ar", "ru", "el", "vi"];
    let mut pages = 0;
    for page in all.iter().filter(|p| languages.contains(&p.lang.as_str())) {
        let text = extract_text_from_html_bytes(&std::fs::read(&page.path).unwrap());
        let name = page.path.display();
        assert!(!text.trim().is_empty(), "{name}");
        assert!(!text.contains('<') || text.len() > 100, "{name}");
        pages += 1;
    }
    assert!(pages > 500, "only {pages} pages");
}

#[test]
fn hostile_markup_does_not_panic() {
    let deep = "<div>".repeat(5_000) + "x";
    assert_eq!(extract_text_from_html_bytes(deep.as_bytes()), "x");
    // Deeper than the guard's limit: cut there, in bounded time (uncut, ~2 min of parsing).
    let deeper = "<span>a</span><div>".repeat(200_000) + "x";
    let start = std::time::Instant::now();
    let text = extract_text_from_html_bytes(deeper.as_bytes());
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    assert!(
        text.starts_with(
            "a
a
"
        ) && !text.ends_with('x')
    );
    let lists = "<ul><li>".repeat(2_000) + "y";
    assert!(extract_text_from_html_bytes(lists.as_bytes()).ends_with("• y"));
    for junk in [
        &b"<"[..],
        b"</p></p><li></ul>",
        b"<table><td><tr>",
        b"\x00\x01<p\x00>",
        b"<pre>",
        b"<!--",
    ] {
        let _ = extract_text_from_html_bytes(junk);
    }
}

/// Throughput on every page of `$LM_ASSETS/html`, one core. Run in release:
/// `cargo test --release -p lm-data --test extract -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn extraction_throughput() {
    let pages: Vec<Vec<u8>> = html_pages()
        .expect("the HTML set")
        .iter()
        .map(|p| std::fs::read(&p.path).unwrap())
        .collect();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    let mut best = f64::MAX;
    let mut chars = 0;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        chars = pages
            .iter()
            .map(|p| extract_text_from_html_bytes(p).len())
            .sum::<usize>();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "extract: {} pages, {:.1} MB in {best:.3} s: {:.0} docs/s, {:.1} MB/s ({chars} bytes of text)",
        pages.len(),
        bytes as f64 / 1e6,
        pages.len() as f64 / best,
        bytes as f64 / 1e6 / best
    );
}
