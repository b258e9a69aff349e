//! PII masking as the course defines it: email addresses, US phone numbers and IPv4 addresses
//! are replaced by fixed placeholders, and each function returns the masked text with the
//! number of replacements.
//!
//! Matching uses the `regex` crate (linear time, no backtracking blow-ups on hostile input).
//! That crate has no look-around, so the "not part of a longer number or word" conditions are
//! checked on the characters around each match instead (see [`mask_with`]).

use std::sync::LazyLock;

use regex::Regex;

pub const EMAIL_PLACEHOLDER: &str = "|||EMAIL_ADDRESS|||";
pub const PHONE_PLACEHOLDER: &str = "|||PHONE_NUMBER|||";
pub const IP_PLACEHOLDER: &str = "|||IP_ADDRESS|||";

/// Local part, "@", then one or more dot-separated labels and a top-level domain of letters.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}")
        .expect("valid email pattern")
});

/// A US number: optional country code (`+1`, `1-`, `1 `), an area code bare or in
/// parentheses, then 3 + 4 digits; groups may be joined by nothing, a space, a dot or a hyphen.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+1[ .\-]?|1[ .\-])?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-]?)\d{3}[ .\-]?\d{4}")
        .expect("valid phone pattern")
});

/// Four dot-separated octets, each 0–255 without leading zeros.
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    const OCTET: &str = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)";
    Regex::new(&format!(r"{OCTET}(?:\.{OCTET}){{3}}")).expect("valid IPv4 pattern")
});

/// Replaces every email address by `|||EMAIL_ADDRESS|||` (an existing placeholder is left
/// alone and not counted).
pub fn mask_emails(text: &str) -> (String, usize) {
    mask_with(text, &EMAIL, EMAIL_PLACEHOLDER, |before, after| {
        // The pattern is greedy on both sides, so only "glued to more address" is rejected.
        !before.is_some_and(is_email_char)
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '@')
    })
}

/// Replaces US phone numbers ("2831823829", "(283)-182-3829", "(283) 182 3829",
/// "283-182-3829", "283.182.3829", "+1 283 182 3829", ...) by `|||PHONE_NUMBER|||`. Digits
/// that are part of a longer number or word are never matched.
pub fn mask_phone_numbers(text: &str) -> (String, usize) {
    mask_with(text, &PHONE, PHONE_PLACEHOLDER, |before, after| {
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '+')
            && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

/// Replaces IPv4 addresses (each octet 0–255) by `|||IP_ADDRESS|||`; a sentence period after
/// the address stays. Longer dotted runs ("1.2.3.4.5", "999.1.1.1") are not addresses.
pub fn mask_ips(text: &str) -> (String, usize) {
    mask_with(text, &IPV4, IP_PLACEHOLDER, |before, after| {
        let mut rest = after.chars();
        let continues = match rest.next() {
            Some(c) => {
                c.is_alphanumeric()
                    || c == '_'
                    || (c == '.' && rest.next().is_some_and(|d| d.is_ascii_digit()))
            }
            None => false,
        };
        !continues && !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

fn is_email_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-".contains(c)
}

/// Replaces the matches of `re` accepted by `accept(char before, text after)`. A rejected match
/// is retried one character later, so a valid match that overlaps a rejected one is not lost.
fn mask_with(
    text: &str,
    re: &Regex,
    placeholder: &str,
    accept: impl Fn(Option<char>, &str) -> bool,
) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes of `text` already in `out`
    let mut search = 0; // where the next search starts
    let mut count = 0;
    while let Some(m) = re.find_at(text, search) {
        let before = text[..m.start()].chars().next_back();
        if accept(before, &text[m.end()..]) {
            out.push_str(&text[copied..m.start()]);
            out.push_str(placeholder);
            copied = m.end();
            search = m.end();
            count += 1;
        } else {
            search = next_char_boundary(text, m.start());
        }
        if search >= text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    (out, count)
}

fn next_char_boundary(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}
