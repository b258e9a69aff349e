//! HTML → plain text, as the course's `extract_text_from_html_bytes` adapter: decode the bytes
//! (BOM, declared charset, detection, lossy UTF-8 — see [`charset`]), parse with html5ever
//! (a spec-compliant parser, so broken markup is repaired the way browsers repair it), then
//! render the visible text with block structure the way resiliparse's plain-text extractor
//! does (see [`render`]).

pub mod char_ref;
pub mod charset;
mod doctype;
pub mod dom;
pub mod nesting;
pub mod render;
mod tokenizer;

pub use charset::{DecodedHtml, decode_html};
pub use render::extract_text;

/// The course's adapter: the visible text of an HTML page given as raw bytes.
pub fn extract_text_from_html_bytes(html: &[u8]) -> String {
    extract_text_with_content_type(html, None)
}

/// As [`extract_text_from_html_bytes`], with the HTTP `Content-Type` header of the response
/// (from a WARC record) so its `charset` parameter is honoured before the page's own.
pub fn extract_text_with_content_type(html: &[u8], content_type: Option<&str>) -> String {
    let decoded = decode_html(html, content_type);
    extract_text(&decoded.text)
}
