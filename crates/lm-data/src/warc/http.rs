//! The HTTP message inside a `response` (or `request`) record: start line, headers, body.

/// A parsed HTTP message; the body borrows the record's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse<'a> {
    /// The start line as written ("HTTP/1.1 200 OK", or "GET / HTTP/1.0" for requests).
    pub start_line: String,
    /// The status code of a response (`None` for requests or a malformed status).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> HttpResponse<'a> {
    /// Splits `block` at the first blank line (CRLF or bare LF). `None` if `block` does not
    /// start like an HTTP message or has no end of headers.
    pub fn parse(block: &'a [u8]) -> Option<Self> {
        let (head_len, body_start) = header_end(block)?;
        let head = String::from_utf8_lossy(&block[..head_len]);
        let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
        let start_line = lines.next()?.to_string();
        let status = if start_line.starts_with("HTTP/") {
            start_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
        } else if start_line.contains(" HTTP/") {
            None
        } else {
            return None;
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Some(Self {
            start_line,
            status,
            headers,
            body: &block[body_start..],
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The `charset` parameter of `Content-Type`.
    pub fn charset(&self) -> Option<&str> {
        self.content_type()
            .and_then(crate::html::charset::charset_param)
    }
}

/// (length of the header section without the blank line, start of the body).
fn header_end(block: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(pos) = memchr::memchr(b'\n', &block[from..]) {
        let nl = from + pos;
        let rest = &block[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        from = nl + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_status_headers_and_body() {
        let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\nX: a\r\n  b\r\n\r\n<p>hi";
        let http = HttpResponse::parse(block).unwrap();
        assert_eq!(http.status, Some(200));
        assert_eq!(http.charset(), Some("ISO-8859-1"));
        assert_eq!(http.header("x"), Some("a b"));
        assert_eq!(http.body, b"<p>hi");
        let no_reason = HttpResponse::parse(b"HTTP/1.0 204\n\n").unwrap();
        assert_eq!(no_reason.status, Some(204));
        assert!(HttpResponse::parse(b"not http\r\n\r\n").is_none());
    }
}
