//! A guard against pathologically deep markup. html5ever's tree builder scans its stack of
//! open elements for many tags, so parsing N nested elements costs O(N²): 50,000 nested
//! `<div>`s take ~9 s, a 1 MiB page of them minutes. Real pages nest a few hundred deep.
//! A byte scan estimates the nesting depth (start tags minus end tags, leaving out void
//! elements and those whose end tag is usually implied) and finds where it passes a limit;
//! the page is cut there, so its cost stays bounded.

/// Estimated depth beyond which a page is cut (about 0.4 s of parsing at worst).
pub const MAX_ESTIMATED_DEPTH: usize = 10_000;

/// Byte offset at which `html`'s estimated nesting depth first exceeds `limit`, if it does.
pub fn depth_cut(html: &str, limit: usize) -> Option<usize> {
    let bytes = html.as_bytes();
    // Each level needs a '<': counting them (fast) settles almost every page.
    if memchr::memchr_iter(b'<', bytes).count() <= limit {
        return None;
    }
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(pos) = memchr::memchr(b'<', &bytes[at..]) {
        let tag_start = at + pos;
        let rest = &bytes[tag_start + 1..];
        at = tag_start + 1;
        if rest.first() == Some(&b'/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let name_len = rest
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if name_len == 0 || !rest[0].is_ascii_alphabetic() {
            continue;
        }
        if is_void_or_implied(&rest[..name_len]) {
            continue;
        }
        // `<x ... />` does not open an element in foreign content; cheap to honour.
        let tag_end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
        if tag_end > 0 && rest[tag_end - 1] == b'/' {
            continue;
        }
        depth += 1;
        if depth > limit {
            return Some(tag_start);
        }
    }
    None
}

fn is_void_or_implied(name: &[u8]) -> bool {
    let mut lower = [0u8; 8];
    if name.len() > lower.len() {
        return false;
    }
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    matches!(
        &lower[..name.len()],
        b"area"
            | b"base"
            | b"br"
            | b"col"
            | b"embed"
            | b"hr"
            | b"img"
            | b"input"
            | b"link"
            | b"meta"
            | b"param"
            | b"source"
            | b"track"
            | b"wbr"
            | b"p"
            | b"li"
            | b"td"
            | b"th"
            | b"tr"
            | b"option"
            | b"dt"
            | b"dd"
            | b"colgroup"
            | b"tbody"
            | b"thead"
            | b"tfoot"
            | b"optgroup"
            | b"rb"
            | b"rt"
            | b"rp"
            | b"html"
            | b"head"
            | b"body"
    )
}

#[cfg(test)]
mod tests {
    use super::depth_cut;

    #[test]
    fn estimates_depth() {
        assert_eq!(depth_cut("<div><div></div></div>", 2), None);
        assert_eq!(depth_cut("<div><span><b>x", 2), Some(11));
        // Void elements, implied end tags and self-closing tags do not nest.
        let flat = "<p>a<li>b<br><img src=x><svg/><td>c".repeat(1000);
        assert_eq!(depth_cut(&flat, 10), None);
        assert_eq!(depth_cut("a < b <3 <!-- c --> <", 0), None);
    }
}
