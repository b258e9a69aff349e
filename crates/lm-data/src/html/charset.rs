//! Byte → text decoding of an HTML page. Order: a byte-order mark; then a declared charset —
//! the HTTP `Content-Type` header if the caller has one, else a `<meta charset>` or
//! `<meta http-equiv="Content-Type">` in the first bytes (unless the bytes contradict it
//! and detection decodes them cleanly); then valid UTF-8 as is; then chardetng's guess.
//! Decoding is lossy (U+FFFD for bad bytes) and never fails.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into the page a `<meta>` charset declaration is looked for (the HTML spec's
/// prescan reads 1024 bytes; real pages often put long `<head>` content first).
const META_PRESCAN_BYTES: usize = 4096;

/// The decoded page and how its encoding was chosen.
#[derive(Debug, Clone)]
pub struct DecodedHtml {
    pub text: String,
    pub encoding: &'static Encoding,
    pub source: CharsetSource,
    /// Whether some bytes were not valid in `encoding` (replaced by U+FFFD).
    pub had_errors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetSource {
    Bom,
    HttpHeader,
    MetaTag,
    ValidUtf8,
    Detected,
}

/// Decodes `html`, using `content_type` (an HTTP `Content-Type` value) when given.
pub fn decode_html(html: &[u8], content_type: Option<&str>) -> DecodedHtml {
    let (encoding, source) = choose_encoding(html, content_type);
    let (text, had_errors) = if source == CharsetSource::Bom {
        let (text, _, had_errors) = encoding.decode(html);
        (text, had_errors)
    } else {
        encoding.decode_without_bom_handling(html)
    };
    // A `<meta>` declaration that the bytes contradict (pages saved in another encoding
    // than they declare are common): trust detection if it decodes cleanly.
    if had_errors && source == CharsetSource::MetaTag {
        let detected = detect(html);
        if detected != encoding {
            let (text, detected_errors) = detected.decode_without_bom_handling(html);
            if !detected_errors {
                return DecodedHtml {
                    text: text.into_owned(),
                    encoding: detected,
                    source: CharsetSource::Detected,
                    had_errors: false,
                };
            }
        }
    }
    DecodedHtml {
        text: text.into_owned(),
        encoding,
        source,
        had_errors,
    }
}

/// The encoding [`decode_html`] would use, and why.
pub fn choose_encoding(
    html: &[u8],
    content_type: Option<&str>,
) -> (&'static Encoding, CharsetSource) {
    if let Some((encoding, _)) = Encoding::for_bom(html) {
        return (encoding, CharsetSource::Bom);
    }
    if let Some(encoding) = content_type
        .and_then(charset_param)
        .and_then(|label| label_to_encoding(label.as_bytes()))
    {
        return (encoding, CharsetSource::HttpHeader);
    }
    if let Some(encoding) = meta_charset(&html[..html.len().min(META_PRESCAN_BYTES)]) {
        return (encoding, CharsetSource::MetaTag);
    }
    if simdutf8::basic::from_utf8(html).is_ok() {
        return (UTF_8, CharsetSource::ValidUtf8);
    }
    (detect(html), CharsetSource::Detected)
}

/// chardetng's guess for the whole page (UTF-8 allowed).
fn detect(html: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(html, true);
    detector.guess(None, chardetng::Utf8Detection::Allow)
}

/// The `charset=` parameter of a `Content-Type` value (quotes removed).
pub fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(|c| c == '"' || c == '\''))
            .filter(|v| !v.is_empty())
    })
}

/// A charset label → encoding, with the HTML spec's overrides: a page cannot really be
/// UTF-16 if its ASCII `<meta>` was readable, and x-user-defined means windows-1252.
fn label_to_encoding(label: &[u8]) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label(label)?;
    Some(match encoding.name() {
        "UTF-16LE" | "UTF-16BE" => UTF_8,
        "x-user-defined" => WINDOWS_1252,
        _ => encoding,
    })
}

/// Finds a charset declared by a `<meta>` tag in `head` (ASCII-case-insensitive).
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let mut rest = head;
    while let Some(at) = find_ascii_ci(rest, b"<meta") {
        let tag_start = &rest[at + 5..];
        let tag_end = memchr::memchr(b'>', tag_start).unwrap_or(tag_start.len());
        let tag = &tag_start[..tag_end];
        if let Some(pos) = find_ascii_ci(tag, b"charset") {
            let after = &tag[pos + 7..];
            let after = trim_ascii_start(after);
            if let Some(value) = after.strip_prefix(b"=") {
                let value = trim_ascii_start(value);
                let value = value
                    .strip_prefix(b"\"")
                    .or_else(|| value.strip_prefix(b"'"))
                    .unwrap_or(value);
                let end = value
                    .iter()
                    .position(|&b| {
                        matches!(b, b'"' | b'\'' | b';' | b'/' | b'>') || b.is_ascii_whitespace()
                    })
                    .unwrap_or(value.len());
                if let Some(encoding) = label_to_encoding(&value[..end]) {
                    return Some(encoding);
                }
            }
        }
        rest = &tag_start[tag_end..];
    }
    None
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Position of `needle` (lowercase ASCII) in `haystack`, ignoring ASCII case.
fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(pos) = memchr::memchr2(first, first.to_ascii_uppercase(), &haystack[from..]) {
        let at = from + pos;
        if haystack.len() - at >= needle.len()
            && haystack[at..at + needle.len()].eq_ignore_ascii_case(needle)
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_param_is_parsed() {
        assert_eq!(
            charset_param("text/html; charset=\"ISO-8859-1\""),
            Some("ISO-8859-1")
        );
        assert_eq!(charset_param("text/html;CHARSET=utf-8 "), Some("utf-8"));
        assert_eq!(charset_param("text/html"), None);
    }

    #[test]
    fn meta_declarations_are_found() {
        let meta = |s: &str| meta_charset(s.as_bytes()).map(|e| e.name());
        assert_eq!(meta("<META CHARSET=shift_jis>"), Some("Shift_JIS"));
        assert_eq!(
            meta(r#"<meta http-equiv="Content-Type" content="text/html; charset=gbk">"#),
            Some("GBK")
        );
        assert_eq!(meta("<meta charset='utf-16'>"), Some("UTF-8"));
        assert_eq!(meta("<meta name=x><p>charset=koi8-r"), None);
    }
}
