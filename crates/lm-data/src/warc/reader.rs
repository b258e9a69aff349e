//! Streaming WARC reader over plain or gzip input, resynchronising after damage.
//!
//! Bytes flow: file → [`Source`] (counts compressed bytes; for gzip, decodes member by member
//! and remembers where each member starts, see [`super::gzip`]) → record parser. A record's offset
//! is its position in the decompressed stream mapped back to the member holding it. After a
//! bad record the parser scans for the next `WARC/` version line; after a gzip error the
//! source jumps to the next gzip header. Every error path consumes input, so reading ends.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::gzip::{GZIP_MAGIC, GzMembers};
use super::record::WarcRecord;
use crate::error::{DataError, Result};

/// Longest header line accepted; longer means we are not looking at a WARC header.
const MAX_LINE: u64 = 64 * 1024;
/// Most header bytes for one record.
const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// A record that could not be read; reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Byte offset in the file (for gzip input: of the gzip member where the problem is).
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for RecordError {}

/// Iterates over the records of a WARC/WET file: `Ok(record)`, or `Err(RecordError)` for a
/// damaged stretch, after which iteration continues with the next readable record.
pub struct WarcReader<R: BufRead> {
    input: Source<R>,
    /// Decompressed bytes consumed by the parser so far.
    consumed: u64,
    records: u64,
    errors: u64,
    finished: bool,
    seen_first_line: bool,
    /// A record read after reporting the damaged stretch before it.
    pending: Option<std::result::Result<WarcRecord, RecordError>>,
}

impl WarcReader<BufReader<File>> {
    /// Opens `path`, detecting gzip by its magic bytes (not the file name).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Self::new(BufReader::with_capacity(256 * 1024, file)).map_err(|e| DataError::io(path, e))
    }
}

impl<R: BufRead> WarcReader<R> {
    /// Reads from `input` (plain or gzip, detected from the first bytes).
    pub fn new(mut input: R) -> io::Result<Self> {
        let gzip = input.fill_buf()?.starts_with(&GZIP_MAGIC[..2]);
        let input = if gzip {
            Source::Gzip(Box::new(GzMembers::new(input, 0)))
        } else {
            Source::Plain(Counting {
                inner: input,
                pos: 0,
            })
        };
        Ok(Self {
            input,
            consumed: 0,
            records: 0,
            errors: 0,
            finished: false,
            seen_first_line: false,
            pending: None,
        })
    }

    /// Records read so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Errors reported so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn input(&mut self) -> &mut Source<R> {
        &mut self.input
    }

    /// File offset of decompressed position `pos`.
    fn file_offset(&mut self, pos: u64) -> u64 {
        match &mut self.input {
            Source::Plain(_) => pos,
            Source::Gzip(gz) => gz.member_offset_of(pos),
        }
    }

    /// Reads one line (up to `MAX_LINE` bytes) into `line`; `Ok(0)` at end of input.
    fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<usize> {
        line.clear();
        let n = self
            .input()
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', line)?;
        self.consumed += n as u64;
        Ok(n)
    }

    fn error(&mut self, offset: u64, message: impl Into<String>) -> RecordError {
        self.errors += 1;
        RecordError {
            offset,
            message: message.into(),
        }
    }

    /// After a gzip error: drop decoded bytes and continue at the next gzip member.
    fn skip_to_next_member(&mut self) {
        let more = match &mut self.input {
            Source::Gzip(gz) => gz.skip_to_next_member(),
            Source::Plain(_) => false,
        };
        self.consumed = self.input.consumed();
        if !more {
            self.finished = true;
        }
    }

    /// Handles an I/O error while reading: a gzip error skips to the next member, anything
    /// else ends reading.
    fn io_error(&mut self, record_start: u64, what: &str, e: io::Error) -> RecordError {
        let offset = match &self.input {
            Source::Gzip(gz) => gz.current_member_offset(),
            Source::Plain(_) => self.file_offset(record_start),
        };
        let is_gzip = matches!(self.input, Source::Gzip(_));
        let err = self.error(offset, format!("{what}: {e}"));
        if is_gzip {
            self.skip_to_next_member();
        } else {
            self.finished = true;
        }
        err
    }

    fn next_record(&mut self) -> Option<std::result::Result<WarcRecord, RecordError>> {
        let mut line = Vec::new();
        // 1. The version line, skipping blank lines; garbage is one error, then a scan.
        let mut garbage_at: Option<u64> = None;
        let (record_start, version) = loop {
            let start = self.consumed;
            match self.read_line(&mut line) {
                Ok(0) => {
                    self.finished = true;
                    return garbage_at.map(|at| {
                        let offset = self.file_offset(at);
                        Err(self.error(offset, "no WARC record found after this point"))
                    });
                }
                Ok(_) => {}
                Err(e) => return Some(Err(self.io_error(start, "reading a record", e))),
            }
            let first_line = !self.seen_first_line;
            self.seen_first_line = true;
            if line.starts_with(b"WARC/") {
                break (start, String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if first_line && line.starts_with(b"filedesc://") {
                self.finished = true;
                return Some(Err(
                    self.error(0, "ARC format is not supported (only WARC/WET)")
                ));
            }
            if garbage_at.is_none() && !line.iter().all(|b| b.is_ascii_whitespace()) {
                garbage_at = Some(start);
            }
        };
        let record = self.read_after_version(record_start, version, &mut line);
        match garbage_at {
            // Report the skipped stretch first; the record after it comes next.
            Some(at) => {
                self.pending = Some(record);
                let offset = self.file_offset(at);
                Some(Err(self.error(
                    offset,
                    "not a WARC record (wrong Content-Length in the record before, or corrupt data); skipped to the next record",
                )))
            }
            None => Some(record),
        }
    }

    /// Reads the fields and the block of a record whose version line was just read.
    fn read_after_version(
        &mut self,
        record_start: u64,
        version: String,
        line: &mut Vec<u8>,
    ) -> std::result::Result<WarcRecord, RecordError> {
        let offset = self.file_offset(record_start);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut header_bytes = 0usize;
        loop {
            match self.read_line(line) {
                Ok(0) => {
                    self.finished = true;
                    return Err(self.error(
                        offset,
                        "truncated record: end of input inside the WARC header",
                    ));
                }
                Ok(n) => header_bytes += n,
                Err(e) => return Err(self.io_error(record_start, "reading a WARC header", e)),
            }
            if !line.ends_with(b"\n") || header_bytes > MAX_HEADER_BYTES {
                return Err(self.error(offset, "WARC header line or section too long; skipped"));
            }
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            if text.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(text.trim());
                }
            } else if let Some((name, value)) = text.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            } else {
                return Err(self.error(
                    offset,
                    format!("malformed WARC header line {text:?}; skipped"),
                ));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.parse::<u64>());
        let length = match length {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(self.error(offset, "invalid Content-Length; record skipped"));
            }
            None => return Err(self.error(offset, "no Content-Length; record skipped")),
        };
        let mut block = Vec::with_capacity(length.min(1 << 20) as usize);
        let read = self.input().by_ref().take(length).read_to_end(&mut block);
        self.consumed += block.len() as u64;
        if let Err(e) = read {
            return Err(self.io_error(record_start, "reading a record's content", e));
        }
        if (block.len() as u64) < length {
            self.finished = true;
            return Err(self.error(
                offset,
                format!(
                    "truncated record: Content-Length {length} but only {} bytes left",
                    block.len()
                ),
            ));
        }
        self.records += 1;
        Ok(WarcRecord {
            offset,
            version,
            headers,
            block,
        })
    }
}

impl<R: BufRead> Iterator for WarcReader<R> {
    type Item = std::result::Result<WarcRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.pending.take() {
            return Some(item);
        }
        if self.finished {
            return None;
        }
        self.next_record()
    }
}

/// A `BufRead` that counts the bytes consumed from it.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt);
    }
}

/// The decompressed byte stream.
enum Source<R> {
    Plain(Counting<R>),
    /// Boxed: the decoder state is large.
    Gzip(Box<GzMembers<R>>),
}

impl<R: BufRead> Source<R> {
    /// Decompressed bytes consumed by the parser so far.
    fn consumed(&self) -> u64 {
        match self {
            Source::Plain(c) => c.pos,
            Source::Gzip(gz) => gz.consumed(),
        }
    }
}

impl<R: BufRead> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(c) => c.read(buf),
            Source::Gzip(gz) => gz.read(buf),
        }
    }
}

impl<R: BufRead> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Source::Plain(c) => c.fill_buf(),
            Source::Gzip(gz) => gz.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Source::Plain(c) => c.consume(amt),
            Source::Gzip(gz) => gz.consume(amt),
        }
    }
}
