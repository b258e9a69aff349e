//! The HTML tokenizer (WHATWG "tokenization"), written for extraction speed and feeding
//! html5ever's tree builder, which still repairs the markup exactly as a browser does.
//!
//! Why not html5ever's own tokenizer: it moves the input one character at a time through a
//! buffer queue and copies every tag name, attribute and text run character by character
//! (~60 % of extraction time). This one scans the bytes (`memchr` for the next `<` or `&`),
//! hands text runs to the tree builder as shared slices of the input, and builds attributes
//! only for the elements whose attributes the tree builder or the renderer reads
//! ([`keeps_attributes`]). The token stream is otherwise the spec's: character references,
//! RCDATA / RAWTEXT / script-data end tags (with the script escape states), comments,
//! DOCTYPEs (quirks mode shapes the tree), CDATA in foreign content, NUL handling, and
//! CR / CRLF normalised to LF. Tests compare the rendered text with html5ever's tokenizer's
//! on the real pages and on hostile markup.

use std::mem::take;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Tag, TagKind, Token, TokenSink, TokenSinkResult};
use html5ever::tree_builder::{TreeBuilder, TreeBuilderOpts};
use html5ever::{Attribute, LocalName, QualName, local_name, ns};
use memchr::{memchr, memchr2, memchr3};

use super::char_ref;
use super::doctype;
use super::dom::{Dom, NodeId};

/// Parses a decoded page into the tree html5ever's tree builder makes of it.
pub fn parse(html: &str) -> Dom {
    let normalised;
    let html = if memchr(b'\r', html.as_bytes()).is_some() {
        normalised = html.replace("\r\n", "\n").replace('\r', "\n");
        normalised.as_str()
    } else {
        html
    };
    let html = html.strip_prefix('\u{feff}').unwrap_or(html);
    let builder = TreeBuilder::new(
        Dom::with_capacity_for(html.len()),
        TreeBuilderOpts::default(),
    );
    let mut tokenizer = Tokenizer {
        src: html,
        input: StrTendril::from_slice(html),
        pos: 0,
        state: State::Data,
        text: StrTendril::new(),
        builder,
        last_start_tag: LocalName::from(""),
    };
    tokenizer.run();
    tokenizer.builder.sink
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Raw(RawKind),
    Plaintext,
}

struct Tokenizer<'a> {
    src: &'a str,
    /// `src` as one tendril: text runs go to the tree builder as shared slices of it.
    input: StrTendril,
    pos: usize,
    state: State,
    /// Character data not yet given to the tree builder.
    text: StrTendril,
    builder: TreeBuilder<NodeId, Dom>,
    /// Raw text ends only at the end tag of the element that started it.
    last_start_tag: LocalName,
}

/// The tokenizer's white space (CR is already normalised away).
pub(super) fn is_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0C' | b' ')
}

/// Whether a tag name ends at `c`.
fn ends_name(c: u8) -> bool {
    is_space(c) || c == b'/' || c == b'>'
}

/// Elements whose attributes matter: `<img alt>` is rendered; the tree builder reads
/// `<input type>` (hidden inputs in tables), `<font color|face|size>` (leaving foreign
/// content), `<annotation-xml encoding>`, `<template shadowrootmode>`, and compares the
/// attributes of formatting elements (the "Noah's Ark" clause, which decides what misnested
/// end tags do). Every other start tag reaches the tree builder without attributes, which
/// the renderer never reads.
fn keeps_attributes(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("img")
            | local_name!("input")
            | local_name!("annotation-xml")
            | local_name!("template")
            // The formatting elements.
            | local_name!("a")
            | local_name!("b")
            | local_name!("big")
            | local_name!("code")
            | local_name!("em")
            | local_name!("font")
            | local_name!("i")
            | local_name!("nobr")
            | local_name!("s")
            | local_name!("small")
            | local_name!("strike")
            | local_name!("strong")
            | local_name!("tt")
            | local_name!("u")
    )
}

impl Tokenizer<'_> {
    fn run(&mut self) {
        while self.pos < self.src.len() {
            match self.state {
                State::Data => self.data(),
                State::Raw(kind) => self.raw_text(kind),
                State::Plaintext => {
                    self.push_text(self.pos, self.src.len(), true);
                    self.pos = self.src.len();
                }
            }
        }
        self.emit(Token::EOFToken);
        self.builder.end();
    }

    fn bytes(&self) -> &[u8] {
        self.src.as_bytes()
    }

    /// Appends `src[start..end]` to the pending text (NUL replaced when `replace_nul`; in
    /// the data state NUL is a token of its own and never reaches here).
    fn push_text(&mut self, start: usize, end: usize, replace_nul: bool) {
        if start == end {
            return;
        }
        let piece = &self.src[start..end];
        if replace_nul && memchr(0, piece.as_bytes()).is_some() {
            self.text.push_slice(&piece.replace('\0', "\u{FFFD}"));
        } else if self.text.is_empty() {
            self.text = self.input.subtendril(start as u32, (end - start) as u32);
        } else {
            self.text.push_slice(piece);
        }
    }

    /// Appends `src[start..end]` with its character references resolved (RCDATA).
    fn push_text_with_refs(&mut self, mut start: usize, end: usize) {
        while let Some(amp) = memchr(b'&', &self.bytes()[start..end]).map(|i| start + i) {
            self.push_text(start, amp, true);
            start = self.char_ref(amp);
        }
        self.push_text(start, end, true);
    }

    /// Resolves the reference at `src[amp]` into the pending text; returns where text resumes.
    fn char_ref(&mut self, amp: usize) -> usize {
        match char_ref::resolve(self.src, amp, false) {
            Some(reference) => {
                for c in reference.chars.into_iter().flatten() {
                    self.text.push_char(c);
                }
                reference.end
            }
            None => {
                self.push_text(amp, amp + 1, false);
                amp + 1
            }
        }
    }

    fn flush_text(&mut self) {
        if !self.text.is_empty() {
            let text = take(&mut self.text);
            self.process(Token::CharacterTokens(text));
        }
    }

    /// Gives the tree builder the pending text, then `token`.
    fn emit(&mut self, token: Token) {
        self.flush_text();
        self.process(token);
    }

    fn process(&mut self, token: Token) {
        match self.builder.process_token(token, 1) {
            TokenSinkResult::RawData(kind) => self.state = State::Raw(kind),
            TokenSinkResult::Plaintext => self.state = State::Plaintext,
            TokenSinkResult::Continue
            | TokenSinkResult::Script(_)
            | TokenSinkResult::EncodingIndicator(_) => {}
        }
    }

    /// The data state, up to the end of the input or a tag that switches state.
    fn data(&mut self) {
        let len = self.src.len();
        while self.pos < len && self.state == State::Data {
            let from = self.pos;
            let Some(at) = memchr3(b'<', b'&', b'\0', &self.bytes()[from..]).map(|i| from + i)
            else {
                self.push_text(from, len, false);
                self.pos = len;
                return;
            };
            self.push_text(from, at, false);
            self.pos = match self.bytes()[at] {
                b'&' => self.char_ref(at),
                b'\0' => {
                    self.emit(Token::NullCharacterToken);
                    at + 1
                }
                _ => self.markup(at),
            };
        }
    }

    /// At a `<` in the data state: a tag, comment, DOCTYPE or CDATA section, or plain text.
    /// Returns where the data state resumes.
    fn markup(&mut self, lt: usize) -> usize {
        let bytes = self.bytes();
        let next = bytes.get(lt + 1).copied();
        match next {
            Some(c) if c.is_ascii_alphabetic() => self.tag(lt + 1, TagKind::StartTag),
            Some(b'/') => match bytes.get(lt + 2) {
                Some(c) if c.is_ascii_alphabetic() => self.tag(lt + 2, TagKind::EndTag),
                Some(b'>') => lt + 3,
                Some(_) => self.bogus_comment(lt + 2),
                None => {
                    self.push_text(lt, lt + 2, false);
                    lt + 2
                }
            },
            Some(b'!') => self.markup_declaration(lt + 2),
            Some(b'?') => self.bogus_comment(lt + 1),
            _ => {
                self.push_text(lt, lt + 1, false);
                lt + 1
            }
        }
    }

    /// A tag whose name starts at `src[start]`; returns the byte after it. A tag cut off by
    /// the end of the input is dropped, as the spec says.
    fn tag(&mut self, start: usize, kind: TagKind) -> usize {
        let bytes = self.bytes();
        let len = bytes.len();
        let mut at = start;
        while at < len && !ends_name(bytes[at]) {
            at += 1;
        }
        if at == len {
            return len;
        }
        let name = lowercase_name(&self.src[start..at]);
        let keep = kind == TagKind::StartTag && keeps_attributes(&name);
        let mut attrs: Vec<Attribute> = Vec::new();
        let mut self_closing = false;
        // The before-attribute-name state; each pass reads one attribute or ends the tag.
        loop {
            while at < len && is_space(bytes[at]) {
                at += 1;
            }
            match bytes.get(at) {
                None => return len,
                Some(b'>') => {
                    at += 1;
                    break;
                }
                Some(b'/') => {
                    at += 1;
                    if bytes.get(at) == Some(&b'>') {
                        self_closing = true;
                        at += 1;
                        break;
                    }
                }
                Some(_) => {
                    let Some(attribute) = self.attribute(at) else {
                        return len;
                    };
                    at = attribute.end;
                    if keep {
                        let name = lowercase_name(&self.src[attribute.name.0..attribute.name.1]);
                        // A repeated attribute is dropped; the first one counts.
                        if !attrs.iter().any(|a| a.name.local == name) {
                            attrs.push(Attribute {
                                name: QualName::new(None, ns!(), name),
                                value: self.attribute_value(attribute.value),
                            });
                        }
                    }
                }
            }
        }
        if kind == TagKind::StartTag {
            self.last_start_tag = name.clone();
        }
        self.emit(Token::TagToken(Tag {
            kind,
            name,
            self_closing,
            attrs,
            had_duplicate_attributes: false,
        }));
        at
    }

    /// Reads the attribute starting at `src[start]` (its first character may be `=`).
    /// `None` when the input ends inside it.
    fn attribute(&self, start: usize) -> Option<AttributeSpan> {
        let bytes = self.bytes();
        let len = bytes.len();
        let mut at = start + 1;
        while at < len && !ends_name(bytes[at]) && bytes[at] != b'=' {
            at += 1;
        }
        let name = (start, at);
        while at < len && is_space(bytes[at]) {
            at += 1;
        }
        if bytes.get(at) != Some(&b'=') {
            return (at < len).then_some(AttributeSpan {
                name,
                value: (at, at),
                end: at,
            });
        }
        at += 1;
        while at < len && is_space(bytes[at]) {
            at += 1;
        }
        match *bytes.get(at)? {
            quote @ (b'"' | b'\'') => {
                let close = at + 1 + memchr(quote, &bytes[at + 1..])?;
                Some(AttributeSpan {
                    name,
                    value: (at + 1, close),
                    end: close + 1,
                })
            }
            // A missing value: the `>` ends the tag in the next pass.
            b'>' => Some(AttributeSpan {
                name,
                value: (at, at),
                end: at,
            }),
            _ => {
                let value_start = at;
                while at < len && !is_space(bytes[at]) && bytes[at] != b'>' {
                    at += 1;
                }
                (at < len).then_some(AttributeSpan {
                    name,
                    value: (value_start, at),
                    end: at,
                })
            }
        }
    }

    fn attribute_value(&self, (start, end): (usize, usize)) -> StrTendril {
        let raw = &self.src[start..end];
        if memchr2(b'&', b'\0', raw.as_bytes()).is_none() {
            return self.input.subtendril(start as u32, (end - start) as u32);
        }
        let mut value = StrTendril::new();
        let mut at = start;
        while at < end {
            let c = self.bytes()[at];
            let reference = (c == b'&')
                .then(|| char_ref::resolve(&self.src[..end], at, true))
                .flatten();
            if let Some(reference) = reference {
                for c in reference.chars.into_iter().flatten() {
                    value.push_char(c);
                }
                at = reference.end;
            } else if c == 0 {
                value.push_char('\u{FFFD}');
                at += 1;
            } else {
                let next =
                    memchr2(b'&', b'\0', &self.bytes()[at + 1..end]).map_or(end, |i| at + 1 + i);
                value.push_slice(&self.src[at..next]);
                at = next;
            }
        }
        value
    }

    /// After `<!`: a comment, a DOCTYPE, a CDATA section (only inside SVG or MathML), or a
    /// bogus comment.
    fn markup_declaration(&mut self, start: usize) -> usize {
        let rest = &self.bytes()[start..];
        if rest.starts_with(b"--") {
            return self.comment(start + 2);
        }
        if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"doctype") {
            let (doctype, end) = doctype::parse(self.src, start + 7);
            self.emit(Token::DoctypeToken(doctype));
            return end;
        }
        if rest.starts_with(b"[CDATA[")
            && self
                .builder
                .adjusted_current_node_present_but_not_in_html_namespace()
        {
            let from = start + 7;
            let end = memchr::memmem::find(&self.bytes()[from..], b"]]>")
                .map_or(self.src.len(), |i| from + i);
            // NUL reaches foreign content, which replaces it.
            self.push_text(from, end, true);
            return (end + 3).min(self.src.len());
        }
        self.bogus_comment(start)
    }

    /// A comment whose text starts at `src[start]` (after `<!--`); ends at `-->`, `--!>`,
    /// or straight away at `>` / `->`, as the spec's comment states do.
    fn comment(&mut self, start: usize) -> usize {
        let bytes = self.bytes();
        let end = match bytes.get(start..) {
            Some([b'>', ..]) => start + 1,
            Some([b'-', b'>', ..]) => start + 2,
            _ => comment_end(bytes, start),
        };
        self.emit(Token::CommentToken(StrTendril::new()));
        end
    }

    /// `<?…>`, `<!…>` and `</…>` that are not tags: a comment up to the next `>`.
    fn bogus_comment(&mut self, start: usize) -> usize {
        let end = memchr(b'>', &self.bytes()[start..]).map_or(self.src.len(), |i| start + i + 1);
        self.emit(Token::CommentToken(StrTendril::new()));
        end
    }

    /// Raw text (`<title>`, `<textarea>`, `<style>`, `<script>`, ...) up to its end tag.
    fn raw_text(&mut self, kind: RawKind) {
        let start = self.pos;
        let end = match kind {
            RawKind::ScriptData | RawKind::ScriptDataEscaped(_) => self.script_end(start),
            RawKind::Rcdata | RawKind::Rawtext => self.raw_end(start),
        };
        let content_end = end.unwrap_or(self.src.len());
        if kind == RawKind::Rcdata {
            self.push_text_with_refs(start, content_end);
        } else {
            self.push_text(start, content_end, true);
        }
        self.flush_text();
        self.state = State::Data;
        self.pos = match end {
            Some(lt) => self.tag(lt + 2, TagKind::EndTag),
            None => self.src.len(),
        };
    }

    /// Whether an end tag for the element that started the raw text begins at `src[lt]`.
    fn is_appropriate_end_tag(&self, lt: usize) -> bool {
        let name = self.last_start_tag.as_bytes();
        let bytes = self.bytes();
        bytes.get(lt + 1) == Some(&b'/')
            && bytes
                .get(lt + 2..lt + 2 + name.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && bytes
                .get(lt + 2 + name.len())
                .is_some_and(|&c| ends_name(c))
    }

    /// The `<` of the end tag closing RCDATA or RAWTEXT text that starts at `src[start]`.
    fn raw_end(&self, start: usize) -> Option<usize> {
        let mut at = start;
        loop {
            let lt = at + memchr(b'<', &self.bytes()[at..])?;
            if self.is_appropriate_end_tag(lt) {
                return Some(lt);
            }
            at = lt + 1;
        }
    }

    /// The `<` of the `</script>` closing script data that starts at `src[start]`, following
    /// the spec's escape states: inside `<!--`, a nested `<script>` hides `</script>` until
    /// its own end.
    fn script_end(&self, start: usize) -> Option<usize> {
        let bytes = self.bytes();
        let mut script = Script::Data;
        let mut at = start;
        while at < bytes.len() {
            let c = bytes[at];
            at += 1;
            script = match (script, c) {
                (Script::Data, b'<') => {
                    if self.is_appropriate_end_tag(at - 1) {
                        return Some(at - 1);
                    }
                    if bytes[at..].starts_with(b"!--") {
                        at += 3;
                        Script::EscapedDashDash(false)
                    } else {
                        Script::Data
                    }
                }
                (Script::Data, _) => Script::Data,
                (Script::Escaped(double), b'-') => Script::EscapedDash(double),
                (Script::EscapedDash(double), b'-') | (Script::EscapedDashDash(double), b'-') => {
                    Script::EscapedDashDash(double)
                }
                (Script::EscapedDashDash(_), b'>') => Script::Data,
                (
                    Script::Escaped(double)
                    | Script::EscapedDash(double)
                    | Script::EscapedDashDash(double),
                    b'<',
                ) => {
                    if !double && self.is_appropriate_end_tag(at - 1) {
                        return Some(at - 1);
                    }
                    // `<script` enters the double-escaped state, `</script` leaves it.
                    let closing = bytes.get(at) == Some(&b'/');
                    let name_start = at + usize::from(closing);
                    if closing == double
                        && bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic)
                    {
                        let mut end = name_start;
                        while end < bytes.len() && bytes[end].is_ascii_alphabetic() {
                            end += 1;
                        }
                        match bytes.get(end) {
                            Some(&d) if ends_name(d) => {
                                at = end + 1;
                                let is_script =
                                    bytes[name_start..end].eq_ignore_ascii_case(b"script");
                                Script::Escaped(double != is_script)
                            }
                            _ => {
                                at = end;
                                Script::Escaped(double)
                            }
                        }
                    } else {
                        Script::Escaped(double)
                    }
                }
                (
                    Script::Escaped(double)
                    | Script::EscapedDash(double)
                    | Script::EscapedDashDash(double),
                    _,
                ) => Script::Escaped(double),
            };
        }
        None
    }
}

/// Where the tokenizer stands inside script data (`bool`: double-escaped).
#[derive(Clone, Copy)]
enum Script {
    Data,
    Escaped(bool),
    EscapedDash(bool),
    EscapedDashDash(bool),
}

struct AttributeSpan {
    name: (usize, usize),
    value: (usize, usize),
    end: usize,
}

/// The end of a comment from `src[start]` on, past its closing `>` (or the input's end).
fn comment_end(bytes: &[u8], start: usize) -> usize {
    let mut at = start;
    loop {
        let Some(dash) = memchr(b'-', &bytes[at..]).map(|i| at + i) else {
            return bytes.len();
        };
        // Two or more dashes, then `>` or `!>`.
        let mut end = dash;
        while end < bytes.len() && bytes[end] == b'-' {
            end += 1;
        }
        if end - dash >= 2 {
            match bytes.get(end..) {
                Some([b'>', ..]) => return end + 1,
                Some([b'!', b'>', ..]) => return end + 2,
                _ => {}
            }
        }
        at = end;
    }
}

/// A tag or attribute name as the tokenizer makes it: ASCII lowercased, NUL replaced.
fn lowercase_name(raw: &str) -> LocalName {
    if raw.bytes().all(|c| !c.is_ascii_uppercase() && c != 0) {
        return LocalName::from(raw);
    }
    let lowered: String = raw
        .chars()
        .map(|c| {
            if c == '\0' {
                '\u{FFFD}'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    LocalName::from(lowered)
}
