//! A document in the pipeline, and how documents come out of WARC/WET records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::html::extract_text_with_content_type;
use crate::warc::{RecordType, WarcRecord};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// `WARC-Target-URI`.
    pub url: Option<String>,
    /// `WARC-Record-ID`.
    pub record_id: Option<String>,
    /// The input file's name.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_score: Option<f32>,
    /// Each classifier stage's probability for its label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, f32>,
    /// PII replacements made in `text`.
    #[serde(default)]
    pub pii_masked: usize,
    pub text: String,
}

/// The document a record carries: the HTML of a `response` (or `resource`) record as text,
/// or the text of a WET `conversion` record; `None` for everything else (requests, metadata,
/// revisits, non-HTML payloads).
pub fn document_of(record: &WarcRecord, source: &str) -> Option<Document> {
    let text = match record.record_type() {
        RecordType::Response => {
            let http = record.http()?;
            // Redirects and errors carry no page.
            if !http.status.is_some_and(|s| (200..300).contains(&s)) {
                return None;
            }
            let content_type = http.content_type();
            if !content_type.is_none_or(is_html) {
                return None;
            }
            extract_text_with_content_type(http.body, content_type)
        }
        RecordType::Resource if record.content_type().is_some_and(is_html) => {
            extract_text_with_content_type(&record.block, record.content_type())
        }
        RecordType::Conversion => String::from_utf8_lossy(&record.block).into_owned(),
        _ => return None,
    };
    Some(Document {
        url: record.target_uri().map(str::to_string),
        record_id: record.record_id().map(str::to_string),
        source: source.to_string(),
        language: None,
        language_score: None,
        scores: BTreeMap::new(),
        pii_masked: 0,
        text,
    })
}

fn is_html(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.contains("html")
}
