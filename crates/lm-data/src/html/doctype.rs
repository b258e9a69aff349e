//! `<!DOCTYPE …>` as the tokenizer reads it (WHATWG DOCTYPE states). It matters for
//! extraction because the tree builder derives quirks mode from the name and the public and
//! system identifiers, and quirks mode changes the tree (a `<table>` does not close an open
//! `<p>`).

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::Doctype;

use super::tokenizer::is_space;

/// Reads the DOCTYPE whose keyword ends just before `src[start]`; returns it and the byte
/// after its `>` (or the input's end, which forces quirks mode).
pub fn parse(src: &str, start: usize) -> (Doctype, usize) {
    let mut reader = Reader {
        bytes: src.as_bytes(),
        at: start,
        doctype: Doctype::default(),
    };
    let end = reader.read(src);
    (reader.doctype, end)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    doctype: Doctype,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|&c| is_space(c)) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Ends the DOCTYPE at the current `>` (or the input's end, with quirks forced).
    fn close(&mut self, quirks: bool) -> usize {
        match self.peek() {
            Some(b'>') => {
                self.doctype.force_quirks |= quirks;
                self.at + 1
            }
            _ => {
                self.doctype.force_quirks = true;
                self.bytes.len()
            }
        }
    }

    /// The bogus DOCTYPE state: everything up to the next `>` is ignored.
    fn bogus(&mut self, quirks: bool) -> usize {
        self.doctype.force_quirks |= quirks;
        match self.bytes[self.at..].iter().position(|&c| c == b'>') {
            Some(i) => self.at + i + 1,
            None => self.bytes.len(),
        }
    }

    fn read(&mut self, src: &str) -> usize {
        self.skip_space();
        let name_start = self.at;
        // A `>` right away ends a nameless DOCTYPE (quirks).
        if self.peek() == Some(b'>') || self.peek().is_none() {
            return self.close(true);
        }
        while self.peek().is_some_and(|c| !is_space(c) && c != b'>') {
            self.at += 1;
        }
        self.doctype.name = Some(identifier(&src[name_start..self.at], true));
        self.skip_space();
        if matches!(self.peek(), Some(b'>') | None) {
            return self.close(false);
        }
        let keyword = self.bytes.get(self.at..self.at + 6).unwrap_or_default();
        let public = keyword.eq_ignore_ascii_case(b"public");
        if !public && !keyword.eq_ignore_ascii_case(b"system") {
            return self.bogus(true);
        }
        self.at += 6;
        if public {
            self.doctype.public_id = match self.quoted_id(src) {
                Ok(id) => Some(id),
                Err(end) => return end,
            };
            // The system identifier is optional after a public one, and needs no space.
            self.skip_space();
            if matches!(self.peek(), Some(b'>') | None) {
                return self.close(false);
            }
            if !matches!(self.peek(), Some(b'"' | b'\'')) {
                return self.bogus(true);
            }
        }
        self.doctype.system_id = match self.quoted_id(src) {
            Ok(id) => Some(id),
            Err(end) => return end,
        };
        self.skip_space();
        match self.peek() {
            Some(b'>') | None => self.close(false),
            // Trailing junk: ignored, but (unlike the other errors) not quirks.
            Some(_) => self.bogus(false),
        }
    }

    /// A quoted identifier after a keyword (or after a public identifier). `Err` carries
    /// where the DOCTYPE ends when there is none (quirks forced).
    fn quoted_id(&mut self, src: &str) -> Result<StrTendril, usize> {
        self.skip_space();
        let Some(quote @ (b'"' | b'\'')) = self.peek() else {
            return Err(match self.peek() {
                Some(b'>') | None => self.close(true),
                Some(_) => self.bogus(true),
            });
        };
        self.at += 1;
        let id_start = self.at;
        while self.peek().is_some_and(|c| c != quote && c != b'>') {
            self.at += 1;
        }
        let id = identifier(&src[id_start..self.at], false);
        if self.peek() != Some(quote) {
            // `>` or the end inside the identifier.
            return Err(self.close(true));
        }
        self.at += 1;
        Ok(id)
    }
}

/// A DOCTYPE name (ASCII lowercased) or identifier, NUL replaced.
fn identifier(raw: &str, lowercase: bool) -> StrTendril {
    let mut id = StrTendril::new();
    for c in raw.chars() {
        id.push_char(match c {
            '\0' => '\u{FFFD}',
            c if lowercase => c.to_ascii_lowercase(),
            c => c,
        });
    }
    id
}
