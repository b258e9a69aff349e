//! WARC writing: one gzip member per record (so each record can be read on its own, as in
//! Common Crawl files), `Content-Length` always computed from the block, and a record ID and
//! date filled in when the caller gives none.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use lm_core::fsutil::AtomicFile;
use rand::RngCore;

use super::record::{RecordType, WarcRecord};
use crate::error::{DataError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarcVersion {
    V1_0,
    V1_1,
}

impl WarcVersion {
    fn line(self) -> &'static str {
        match self {
            Self::V1_0 => "WARC/1.0\r\n",
            Self::V1_1 => "WARC/1.1\r\n",
        }
    }
}

/// Writes WARC records to any `Write`; returns each record's offset.
pub struct WarcWriter<W: Write> {
    out: W,
    gzip: bool,
    version: WarcVersion,
    written: u64,
}

impl<W: Write> WarcWriter<W> {
    pub fn new(out: W, gzip: bool, version: WarcVersion) -> Self {
        Self {
            out,
            gzip,
            version,
            written: 0,
        }
    }

    /// Writes a record of `record_type` with `headers` and `block`. The values of any
    /// `WARC-Type` or `Content-Length` in `headers` are replaced by the true ones. Returns the
    /// record's offset in the output.
    pub fn write_record(
        &mut self,
        record_type: &RecordType,
        headers: &[(&str, &str)],
        block: &[u8],
    ) -> io::Result<u64> {
        // Fields keep the caller's order; WARC-Type and Content-Length are written where the
        // caller put them (values from the arguments), else first and last.
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut head = String::with_capacity(256);
        head.push_str(self.version.line());
        if !has("WARC-Type") {
            head.push_str(&format!("WARC-Type: {record_type}\r\n"));
        }
        if !has("WARC-Record-ID") {
            head.push_str(&format!("WARC-Record-ID: <urn:uuid:{}>\r\n", random_uuid()));
        }
        if !has("WARC-Date") {
            head.push_str(&format!("WARC-Date: {}\r\n", utc_now()));
        }
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("WARC-Type") {
                head.push_str(&format!("{name}: {record_type}\r\n"));
            } else if name.eq_ignore_ascii_case("Content-Length") {
                head.push_str(&format!("{name}: {}\r\n", block.len()));
            } else {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !has("Content-Length") {
            head.push_str(&format!("Content-Length: {}\r\n", block.len()));
        }
        head.push_str("\r\n");
        let offset = self.written;
        if self.gzip {
            let mut member = GzEncoder::new(Vec::new(), Compression::default());
            member.write_all(head.as_bytes())?;
            member.write_all(block)?;
            member.write_all(b"\r\n\r\n")?;
            let bytes = member.finish()?;
            self.out.write_all(&bytes)?;
            self.written += bytes.len() as u64;
        } else {
            self.out.write_all(head.as_bytes())?;
            self.out.write_all(block)?;
            self.out.write_all(b"\r\n\r\n")?;
            self.written += (head.len() + block.len() + 4) as u64;
        }
        Ok(offset)
    }

    /// Writes a copy of `record` (its fields as they are, its block, a fresh Content-Length).
    pub fn write(&mut self, record: &WarcRecord) -> io::Result<u64> {
        let headers: Vec<(&str, &str)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.write_record(&record.record_type(), &headers, &record.block)
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A WARC file that appears under its name only when [`finish`](Self::finish) succeeds (it is
/// written to a hidden temporary file in the same directory, then renamed).
pub struct WarcFileWriter {
    writer: WarcWriter<AtomicFile>,
    path: PathBuf,
}

impl WarcFileWriter {
    /// gzip members if `path` ends in `.gz`.
    pub fn create(path: &Path, version: WarcVersion) -> Result<Self> {
        let gzip = path.to_string_lossy().ends_with(".gz");
        Ok(Self {
            writer: WarcWriter::new(AtomicFile::create(path)?, gzip, version),
            path: path.to_path_buf(),
        })
    }

    pub fn writer(&mut self) -> &mut WarcWriter<AtomicFile> {
        &mut self.writer
    }

    /// Flushes, syncs and renames the file into place.
    pub fn finish(self) -> Result<()> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(file.commit()?)
    }
}

/// A random (version 4) UUID.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The current time as WARC-Date wants it: "YYYY-MM-DDThh:mm:ssZ".
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ids_are_well_formed() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_388_718_202), "2014-01-03T03:03:22Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
