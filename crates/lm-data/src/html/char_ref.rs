//! Character references (`&amp;`, `&#233;`, `&#xE9;`) as the HTML tokenizer resolves them
//! (WHATWG "character reference state"): the longest named reference in the standard table,
//! with or without its `;` where the table allows; numeric references with the spec's
//! replacements for NUL, surrogates, out-of-range values and the C1 controls (read as
//! windows-1252, as browsers do).

use html5ever::data::{C1_REPLACEMENTS, NAMED_ENTITIES};

/// A resolved reference: the code points it stands for and the byte just after it.
#[derive(Debug, PartialEq, Eq)]
pub struct CharRef {
    pub chars: [Option<char>; 2],
    pub end: usize,
}

/// Resolves the reference starting at `src[amp]` (an `&`). `None` means the `&` is plain
/// text: nothing that follows forms a reference, or (inside an attribute value) a named
/// reference without `;` is followed by `=` or an alphanumeric, which the spec leaves
/// unresolved for the sake of URLs like `?a=1&copy=2`.
pub fn resolve(src: &str, amp: usize, in_attribute: bool) -> Option<CharRef> {
    let bytes = src.as_bytes();
    match bytes.get(amp + 1)? {
        b'#' => numeric(bytes, amp + 2),
        c if c.is_ascii_alphanumeric() => named(src, amp + 1, in_attribute),
        _ => None,
    }
}

fn named(src: &str, start: usize, in_attribute: bool) -> Option<CharRef> {
    let bytes = src.as_bytes();
    let mut end = start;
    let mut best = None;
    // The table holds every prefix of every name (mapped to (0, 0)), so the walk can stop
    // at the first prefix it lacks.
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b';') {
        end += 1;
        match NAMED_ENTITIES.get(&src[start..end]) {
            None => break,
            Some(&(0, _)) => {}
            Some(&(first, second)) => best = Some((end, first, second)),
        }
        if bytes[end - 1] == b';' {
            break;
        }
    }
    let (end, first, second) = best?;
    let terminated = bytes[end - 1] == b';';
    if in_attribute
        && !terminated
        && bytes
            .get(end)
            .is_some_and(|&c| c == b'=' || c.is_ascii_alphanumeric())
    {
        return None;
    }
    Some(CharRef {
        chars: [
            char::from_u32(first),
            char::from_u32(second).filter(|_| second != 0),
        ],
        end,
    })
}

fn numeric(bytes: &[u8], mut at: usize) -> Option<CharRef> {
    let hex = matches!(bytes.get(at), Some(b'x' | b'X'));
    if hex {
        at += 1;
    }
    let radix = if hex { 16 } else { 10 };
    let digits_start = at;
    let mut value: u32 = 0;
    while let Some(digit) = bytes.get(at).and_then(|&c| (c as char).to_digit(radix)) {
        // Saturate above the Unicode range: the value only has to stay "too large".
        value = value
            .saturating_mul(radix)
            .saturating_add(digit)
            .min(0x11_0000);
        at += 1;
    }
    if at == digits_start {
        return None;
    }
    if bytes.get(at) == Some(&b';') {
        at += 1;
    }
    Some(CharRef {
        chars: [Some(numeric_char(value)), None],
        end: at,
    })
}

fn numeric_char(value: u32) -> char {
    match value {
        0 | 0xD800..=0xDFFF | 0x11_0000.. => '\u{FFFD}',
        0x80..=0x9F => C1_REPLACEMENTS[(value - 0x80) as usize]
            .unwrap_or_else(|| char::from_u32(value).unwrap_or('\u{FFFD}')),
        _ => char::from_u32(value).unwrap_or('\u{FFFD}'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(src: &str, in_attribute: bool) -> Option<(String, usize)> {
        resolve(src, 0, in_attribute).map(|r| (r.chars.iter().flatten().collect(), r.end))
    }

    #[test]
    fn named_references_take_the_longest_match() {
        assert_eq!(text("&amp;x", false), Some(("&".into(), 5)));
        // `&not` is a legacy name valid without `;`; `&notin;` is longer and wins.
        assert_eq!(text("&notin;", false), Some(("∉".into(), 7)));
        assert_eq!(text("&notit;", false), Some(("¬".into(), 4)));
        assert_eq!(text("&bogus;", false), None);
        assert_eq!(text("& b", false), None);
        // Two code points.
        assert_eq!(
            text("&NotEqualTilde;", false),
            Some(("≂\u{338}".into(), 15))
        );
    }

    #[test]
    fn attributes_keep_unterminated_references_before_alphanumerics_and_equals() {
        assert_eq!(text("&copy=2", true), None);
        assert_eq!(text("&copyx", true), None);
        assert_eq!(text("&copy;=2", true), Some(("©".into(), 6)));
        assert_eq!(text("&copy 2", true), Some(("©".into(), 5)));
        assert_eq!(text("&copyx", false), Some(("©".into(), 5)));
    }

    #[test]
    fn numeric_references_follow_the_replacement_rules() {
        assert_eq!(text("&#233;", false), Some(("é".into(), 6)));
        assert_eq!(text("&#xE9", false), Some(("é".into(), 5)));
        assert_eq!(text("&#X1F600;", false), Some(("😀".into(), 9)));
        assert_eq!(text("&#0;", false), Some(("\u{FFFD}".into(), 4)));
        assert_eq!(text("&#xD800;", false), Some(("\u{FFFD}".into(), 8)));
        assert_eq!(text("&#99999999999;", false), Some(("\u{FFFD}".into(), 14)));
        // C1 controls are read as windows-1252: 0x80 is the euro sign.
        assert_eq!(text("&#128;", false), Some(("€".into(), 6)));
        assert_eq!(text("&#x81;", false), Some(("\u{81}".into(), 6)));
        assert_eq!(text("&#;", false), None);
        assert_eq!(text("&#x;", false), None);
    }
}
