//! One WARC record: version, ordered named fields, and the content block as bytes.

use std::fmt;

use super::http::HttpResponse;

/// The `WARC-Type` of a record (WARC 1.1 §6). `conversion` records carry WET text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordType {
    Warcinfo,
    Response,
    Resource,
    Request,
    Metadata,
    Revisit,
    Conversion,
    Continuation,
    Other(String),
}

impl RecordType {
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "warcinfo" => Self::Warcinfo,
            "response" => Self::Response,
            "resource" => Self::Resource,
            "request" => Self::Request,
            "metadata" => Self::Metadata,
            "revisit" => Self::Revisit,
            "conversion" => Self::Conversion,
            "continuation" => Self::Continuation,
            _ => Self::Other(name.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Warcinfo => "warcinfo",
            Self::Response => "response",
            Self::Resource => "resource",
            Self::Request => "request",
            Self::Metadata => "metadata",
            Self::Revisit => "revisit",
            Self::Conversion => "conversion",
            Self::Continuation => "continuation",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarcRecord {
    /// Where the record starts in the file: its byte offset, or for gzip files the offset of
    /// the gzip member it starts in.
    pub offset: u64,
    /// The version line, e.g. "WARC/1.0".
    pub version: String,
    /// Named fields in file order (names as written; look-ups ignore case).
    pub headers: Vec<(String, String)>,
    /// The content block (`Content-Length` bytes).
    pub block: Vec<u8>,
}

impl WarcRecord {
    /// The first field called `name` (ASCII-case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn record_type(&self) -> RecordType {
        RecordType::parse(self.header("WARC-Type").unwrap_or(""))
    }

    pub fn target_uri(&self) -> Option<&str> {
        self.header("WARC-Target-URI")
    }

    pub fn record_id(&self) -> Option<&str> {
        self.header("WARC-Record-ID")
    }

    pub fn date(&self) -> Option<&str> {
        self.header("WARC-Date")
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The payload type a crawler sniffed (Common Crawl sets it on responses).
    pub fn identified_payload_type(&self) -> Option<&str> {
        self.header("WARC-Identified-Payload-Type")
    }

    /// The HTTP status line and headers split from the payload, for `response` (and
    /// `request`) records whose block is an HTTP message; `None` otherwise.
    pub fn http(&self) -> Option<HttpResponse<'_>> {
        match self.record_type() {
            RecordType::Response | RecordType::Request | RecordType::Revisit => {
                HttpResponse::parse(&self.block)
            }
            _ => None,
        }
    }

    /// What the record is about: the HTTP body for HTTP messages, else the whole block.
    pub fn payload(&self) -> &[u8] {
        match self.http() {
            Some(http) => http.body,
            None => &self.block,
        }
    }
}
