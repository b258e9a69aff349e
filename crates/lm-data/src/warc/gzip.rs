//! Concatenated gzip members (one per WARC record, as Common Crawl writes them) decoded one
//! after another, remembering where each starts in the file.
//!
//! Fast path: a whole member held in memory is inflated in one call by libdeflate (about
//! 1.3× zlib-rs on WARC pages), straight into the buffer the record parser reads from.
//! Anything else — a member larger than 32 MiB compressed or 256 MiB inflated, a corrupt or truncated member, trailing garbage — is decoded by flate2's
//! streaming decoder from the member's start, so errors are found and reported exactly as a
//! streaming reader finds them.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// Output chunk of the streaming decoder.
const STREAM_CHUNK: usize = 64 << 10;

/// Buffer sizes of the fast path (smaller in tests, to drive every path).
#[derive(Clone, Copy)]
struct Limits {
    /// Compressed bytes read ahead at a time, and the first size of the output buffer.
    chunk: usize,
    /// Most compressed bytes held to inflate one member in one call.
    max_window: usize,
    /// Most inflated bytes of one member decoded in one call.
    max_output: usize,
}

const LIMITS: Limits = Limits {
    chunk: 1 << 20,
    max_window: 32 << 20,
    max_output: 256 << 20,
};
pub(super) const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The compressed input, buffered so a whole member can be handed to libdeflate at once.
pub(super) struct Window<R> {
    inner: R,
    chunk: usize,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    pub(super) pos: u64,
}

impl<R: BufRead> Window<R> {
    fn new(inner: R, pos: u64, chunk: usize) -> Self {
        Self {
            inner,
            chunk,
            buf: Vec::new(),
            start: 0,
            eof: false,
            pos,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more bytes after those buffered (at least a chunk, else doubling them, so a
    /// large member is retried a few times, not once per chunk); false if none came.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.start);
        self.start = 0;
        let before = self.buf.len();
        let target = before + self.chunk.max(before);
        while self.buf.len() < target {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                self.eof = true;
                break;
            }
            let n = chunk.len().min(target - self.buf.len());
            self.buf.extend_from_slice(&chunk[..n]);
            self.inner.consume(n);
        }
        Ok(self.buf.len() > before)
    }
}

impl<R: BufRead> Read for Window<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Window<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.buf.len() {
            self.read_more()?;
        }
        Ok(self.buffered())
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buf.len() - self.start);
        self.start += amt;
        self.pos += amt as u64;
    }
}

/// A libdeflate decompressor.
struct Inflater(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

enum Inflated {
    /// (compressed bytes used, inflated bytes written).
    Member(usize, usize),
    OutputTooSmall,
    BadOrIncomplete,
}

impl Inflater {
    fn new() -> Self {
        // SAFETY: plain allocation; null (out of memory) is checked.
        let ptr = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        Self(std::ptr::NonNull::new(ptr).expect("libdeflate could not allocate a decompressor"))
    }

    /// Inflates the gzip member at the start of `input` into `out`.
    fn gzip_member(&mut self, input: &[u8], out: &mut [u8]) -> Inflated {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: both slices are valid for their lengths; libdeflate reads only `input`,
        // writes only `out`, and reports how much of each it used.
        let result = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match result {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => Inflated::Member(used, written),
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => {
                Inflated::OutputTooSmall
            }
            _ => Inflated::BadOrIncomplete,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// The decompressed stream of concatenated gzip members, as a `BufRead`.
pub(super) struct GzMembers<R> {
    /// The compressed input; `None` while `stream` holds it.
    window: Option<Window<R>>,
    /// The streaming decoder of the member being decoded without the fast path.
    stream: Option<GzDecoder<Window<R>>>,
    inflater: Inflater,
    limits: Limits,
    /// Decoded bytes not yet consumed are `out[out_pos..out_len]`.
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    /// Decompressed bytes produced so far.
    decompressed: u64,
    /// (decompressed position, file offset) of each member start not yet passed by the
    /// parser; the last entry is the member being decoded.
    members: VecDeque<(u64, u64)>,
}

impl<R: BufRead> GzMembers<R> {
    /// Decodes `input`, whose first byte is at file offset `pos`.
    pub(super) fn new(input: R, pos: u64) -> Self {
        Self::with_limits(input, pos, LIMITS)
    }

    fn with_limits(input: R, pos: u64, limits: Limits) -> Self {
        Self {
            window: Some(Window::new(input, pos, limits.chunk)),
            stream: None,
            inflater: Inflater::new(),
            limits,
            out: vec![0; limits.chunk],
            out_pos: 0,
            out_len: 0,
            decompressed: 0,
            members: VecDeque::new(),
        }
    }

    /// Decompressed bytes handed to the reader so far.
    pub(super) fn consumed(&self) -> u64 {
        self.decompressed - (self.out_len - self.out_pos) as u64
    }

    pub(super) fn current_member_offset(&self) -> u64 {
        self.members.back().map_or(0, |m| m.1)
    }

    /// File offset of the member holding decompressed position `pos` (forgetting members
    /// before it: positions are asked for in increasing order).
    pub(super) fn member_offset_of(&mut self, pos: u64) -> u64 {
        while self.members.len() > 1 && self.members[1].0 <= pos {
            self.members.pop_front();
        }
        self.members.front().map_or(0, |m| m.1)
    }

    /// Takes the input back from a streaming decoder, if one holds it.
    fn window(&mut self) -> &mut Window<R> {
        if let Some(stream) = self.stream.take() {
            self.window = Some(stream.into_inner());
        }
        self.window
            .as_mut()
            .expect("the input is held by the window or the stream")
    }

    /// Decodes more into `out` once it is used up; leaves it empty at end of input.
    fn refill(&mut self) -> io::Result<()> {
        self.out_pos = 0;
        self.out_len = 0;
        while self.out_len == 0 {
            if let Some(stream) = self.stream.as_mut() {
                let n = stream.read(&mut self.out[..STREAM_CHUNK])?;
                if n == 0 {
                    self.window(); // the member is done; back to the fast path
                }
                self.out_len = n;
            } else if !self.next_member()? {
                return Ok(());
            }
        }
        self.decompressed += self.out_len as u64;
        Ok(())
    }

    /// Starts the member at the input position: inflates it whole into `out`, or hands it
    /// to a streaming decoder. False at end of input.
    fn next_member(&mut self) -> io::Result<bool> {
        let window = self.window();
        if window.buffered().is_empty() && !window.read_more()? {
            return Ok(false);
        }
        let start = window.pos;
        self.members.push_back((self.decompressed, start));
        loop {
            let window = self.window.as_mut().expect("the window holds the input");
            match self.inflater.gzip_member(window.buffered(), &mut self.out) {
                Inflated::Member(used, written) => {
                    window.consume(used);
                    self.out_len = written;
                    return Ok(true);
                }
                Inflated::OutputTooSmall if self.out.len() < self.limits.max_output => {
                    let len = self.out.len() * 2;
                    self.out.resize(len, 0);
                }
                // Perhaps the member goes on past the bytes read so far.
                Inflated::BadOrIncomplete
                    if window.buffered().len() < self.limits.max_window
                        && window.read_more()? => {}
                _ => {
                    let window = self.window.take().expect("the window holds the input");
                    self.stream = Some(GzDecoder::new(window));
                    if self.out.len() < STREAM_CHUNK {
                        self.out.resize(STREAM_CHUNK, 0);
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// After a decoding error: drops what was decoded of the damaged member and finds the
    /// next gzip header past its start. False at end of input.
    pub(super) fn skip_to_next_member(&mut self) -> bool {
        self.decompressed = self.consumed();
        self.out_pos = 0;
        self.out_len = 0;
        let damaged_start = self.current_member_offset();
        let input = self.window();
        if input.pos <= damaged_start {
            input.consume(1);
        }
        loop {
            let buf = input.buffered();
            if let Some(at) = memchr::memmem::find(buf, &GZIP_MAGIC) {
                input.consume(at);
                return true;
            }
            // Keep the last two bytes: the magic may straddle two reads.
            input.consume(buf.len().saturating_sub(2));
            if !input.read_more().unwrap_or(false) {
                let rest = input.buffered().len();
                input.consume(rest);
                return false;
            }
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for GzMembers<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.out_pos == self.out_len {
            self.refill()?;
        }
        Ok(&self.out[self.out_pos..self.out_len])
    }

    fn consume(&mut self, amt: usize) {
        self.out_pos = (self.out_pos + amt).min(self.out_len);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Read, Write};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::{GzMembers, LIMITS, Limits};

    /// Members of varied sizes (one empty, some poorly compressible) and their contents.
    fn members() -> (Vec<u8>, Vec<Vec<u8>>, Vec<u64>) {
        let mut state = 12345u64;
        let mut file = Vec::new();
        let (mut contents, mut starts) = (Vec::new(), Vec::new());
        for i in 0..40usize {
            let len = [0, 10, 300, 5000, 70_000][i % 5];
            let member: Vec<u8> = (0..len)
                .map(|j| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if i % 3 == 0 {
                        (state >> 56) as u8
                    } else {
                        b"ab cd\n"[j % 6]
                    }
                })
                .collect();
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&member).unwrap();
            starts.push(file.len() as u64);
            file.extend(gz.finish().unwrap());
            contents.push(member);
        }
        (file, contents, starts)
    }

    #[test]
    fn every_path_decodes_the_same_bytes_and_member_offsets() {
        let (file, contents, starts) = members();
        let tiny = Limits {
            chunk: 64,
            max_window: 1024,
            max_output: 4096,
        };
        for limits in [LIMITS, tiny] {
            let mut gz = GzMembers::with_limits(&file[..], 0, limits);
            let mut out = Vec::new();
            gz.read_to_end(&mut out).unwrap();
            assert_eq!(out, contents.concat());
            // Each member's first byte maps back to the member's file offset.
            let mut pos = 0u64;
            for (member, start) in contents.iter().zip(&starts) {
                if !member.is_empty() {
                    assert_eq!(gz.member_offset_of(pos), *start);
                }
                pos += member.len() as u64;
            }
        }
    }

    #[test]
    fn truncated_member_is_an_error_after_the_whole_ones() {
        let (file, contents, starts) = members();
        let cut = &file[..(starts[4] + starts[5]) as usize / 2];
        let mut gz = GzMembers::new(cut, 0);
        let mut out = Vec::new();
        loop {
            match gz.fill_buf() {
                Ok([]) => panic!("a truncated member must not end cleanly"),
                Ok(buf) => {
                    let n = buf.len();
                    out.extend_from_slice(buf);
                    gz.consume(n);
                }
                Err(_) => break,
            }
        }
        assert!(out.starts_with(&contents[..4].concat()));
        assert_eq!(gz.current_member_offset(), starts[4]);
        assert!(!gz.skip_to_next_member(), "no member follows the cut");
    }
}
