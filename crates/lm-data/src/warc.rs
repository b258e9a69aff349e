//! WARC (and WET, its text-only form) reading and writing. The reader streams plain or
//! gzip files (one gzip member per record as Common Crawl writes them, or one member for the
//! whole file), and survives damage: a corrupt or truncated record is reported with its byte
//! offset (the compressed offset of its gzip member for `.gz`), counted, and skipped.

mod gzip;
pub mod http;
pub mod reader;
pub mod record;
pub mod writer;

pub use http::HttpResponse;
pub use reader::{RecordError, WarcReader};
pub use record::{RecordType, WarcRecord};
pub use writer::{WarcFileWriter, WarcVersion, WarcWriter};
