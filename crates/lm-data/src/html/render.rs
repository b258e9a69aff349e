//! Visible text of an HTML document with block structure, following resiliparse's
//! plain-text extractor (checked against it on real pages): text whitespace collapsed as a
//! browser does; one line break around block elements and two around paragraphs and
//! `h1`–`h4`; `<br>` adds a line break; list items as two spaces per level + "• " (or "N. "
//! in `<ol>`), continuation lines indented to match; table cells joined by two tabs;
//! `<pre>` kept verbatim; image alt text kept; scripts, styles, `<head>` and form controls
//! dropped; trailing white space removed.

use html5ever::tendril::TendrilSink;
use html5ever::{LocalName, ParseOpts, local_name, parse_document};

use super::dom::{DOCUMENT, Dom, Node, NodeData, NodeId};
use super::nesting::{MAX_ESTIMATED_DEPTH, depth_cut};
use super::tokenizer;

/// The visible text of `html` (already decoded). A page nested deeper than
/// [`MAX_ESTIMATED_DEPTH`] is cut where it gets that deep (see [`super::nesting`]).
pub fn extract_text(html: &str) -> String {
    let html = cut_deep_nesting(html);
    render(tokenizer::parse(html), html.len())
}

/// As [`extract_text`], tokenized by html5ever's own (spec-reference, slower) tokenizer:
/// the yardstick the fast tokenizer is tested against.
pub fn extract_text_with_html5ever_tokenizer(html: &str) -> String {
    let html = cut_deep_nesting(html);
    let dom = parse_document(Dom::with_capacity_for(html.len()), ParseOpts::default()).one(html);
    render(dom, html.len())
}

fn cut_deep_nesting(html: &str) -> &str {
    match depth_cut(html, MAX_ESTIMATED_DEPTH) {
        Some(cut) => &html[..cut],
        None => html,
    }
}

fn render(dom: Dom, html_len: usize) -> String {
    let mut out = TextWriter::with_capacity(html_len / 3);
    walk(&dom.into_nodes(), &mut out);
    out.finish()
}

/// How an element shapes the text around and inside it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Content not shown (script, style, head, form controls, ...).
    Hidden,
    Inline,
    /// A block separated by `n` line breaks from its neighbours.
    Block(u8),
    Preformatted,
    List {
        ordered: bool,
    },
    ListItem,
    TableRow,
    TableCell,
    LineBreak,
    Image,
}

/// Matched on interned names: comparing atoms is one integer compare, where comparing
/// strings first has to look the atom's text up.
fn role(tag: &LocalName) -> Role {
    match *tag {
        local_name!("head")
        | local_name!("title")
        | local_name!("script")
        | local_name!("style")
        | local_name!("noscript")
        | local_name!("iframe")
        | local_name!("template")
        | local_name!("textarea")
        | local_name!("select")
        | local_name!("option")
        | local_name!("button")
        | local_name!("label")
        | local_name!("input") => Role::Hidden,
        local_name!("p")
        | local_name!("h1")
        | local_name!("h2")
        | local_name!("h3")
        | local_name!("h4") => Role::Block(2),
        local_name!("address")
        | local_name!("article")
        | local_name!("aside")
        | local_name!("blockquote")
        | local_name!("caption")
        | local_name!("center")
        | local_name!("dd")
        | local_name!("details")
        | local_name!("div")
        | local_name!("dl")
        | local_name!("dt")
        | local_name!("fieldset")
        | local_name!("figcaption")
        | local_name!("figure")
        | local_name!("footer")
        | local_name!("form")
        | local_name!("h5")
        | local_name!("h6")
        | local_name!("header")
        | local_name!("hgroup")
        | local_name!("hr")
        | local_name!("main")
        | local_name!("nav")
        | local_name!("section")
        | local_name!("table") => Role::Block(1),
        local_name!("pre") => Role::Preformatted,
        local_name!("ul") => Role::List { ordered: false },
        local_name!("ol") => Role::List { ordered: true },
        local_name!("li") => Role::ListItem,
        local_name!("tr") => Role::TableRow,
        local_name!("td") | local_name!("th") => Role::TableCell,
        local_name!("br") => Role::LineBreak,
        local_name!("img") => Role::Image,
        _ => Role::Inline,
    }
}

/// Depth-first walk with an explicit stack, so deeply nested pages cannot overflow the
/// thread's stack.
fn walk(nodes: &[Node], out: &mut TextWriter) {
    struct Frame {
        next_child: Option<NodeId>,
        role: Role,
        /// `table`, `tbody`, `thead`, `tfoot` or `tr`: white space between cells is not text.
        table_structure: bool,
    }
    let mut stack = vec![Frame {
        next_child: nodes[DOCUMENT].first_child,
        role: Role::Inline,
        table_structure: false,
    }];
    while let Some(top) = stack.last_mut() {
        let Some(child) = top.next_child else {
            let done = stack.pop().expect("stack is not empty");
            out.leave(done.role);
            continue;
        };
        let child = &nodes[child];
        top.next_child = child.next_sibling;
        let table_structure = top.table_structure;
        match &child.data {
            NodeData::Text(text) => {
                if !(table_structure && text.chars().all(is_html_space)) {
                    out.text(text);
                }
            }
            NodeData::Element { name, alt, .. } => {
                let role = role(&name.local);
                match role {
                    Role::Hidden => {}
                    Role::LineBreak => out.line_break(),
                    Role::Image => {
                        if let Some(alt) = alt {
                            out.text(alt);
                        }
                    }
                    _ => {
                        out.enter(role);
                        stack.push(Frame {
                            next_child: child.first_child,
                            role,
                            table_structure: matches!(
                                name.local,
                                local_name!("table")
                                    | local_name!("tbody")
                                    | local_name!("thead")
                                    | local_name!("tfoot")
                                    | local_name!("tr")
                            ),
                        });
                    }
                }
            }
            NodeData::Document | NodeData::Other => {}
        }
    }
}

struct ListState {
    ordered: bool,
    items: usize,
}

/// Builds the output text. Line breaks are written eagerly (a block asks for "at least n"),
/// while spaces, bullets, indentation and cell separators are held back until the next
/// visible text, so no line ends in white space and empty elements leave no trace.
struct TextWriter {
    out: String,
    /// Consecutive '\n' at the end of `out`.
    trailing_newlines: usize,
    pending_space: bool,
    /// A space was held back when the line breaks now ending `out` were written; a `<pre>`
    /// that follows brings it back (as resiliparse does).
    space_before_breaks: bool,
    pending_cell_separator: bool,
    pending_bullet: Option<String>,
    lists: Vec<ListState>,
    /// Cells seen so far in each open table row.
    rows: Vec<usize>,
    /// Length of `out` where each open `<pre>` began.
    pre_starts: Vec<usize>,
}

impl TextWriter {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
            trailing_newlines: 0,
            pending_space: false,
            space_before_breaks: false,
            pending_cell_separator: false,
            pending_bullet: None,
            lists: Vec::new(),
            rows: Vec::new(),
            pre_starts: Vec::new(),
        }
    }

    fn finish(mut self) -> String {
        let end = self
            .out
            .trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
            .len();
        self.out.truncate(end);
        self.out
    }

    fn enter(&mut self, role: Role) {
        match role {
            Role::Block(n) => self.ensure_newlines(n.into()),
            Role::Preformatted => {
                // Unlike other blocks, a `<pre>` keeps the space before it, even one held
                // back at the end of the block before.
                if self.space_before_breaks && self.trailing_newlines > 0 {
                    let at = self.out.len() - self.trailing_newlines;
                    self.out.insert(at, ' ');
                    self.space_before_breaks = false;
                }
                self.flush_space();
                self.ensure_newlines(1);
                self.pre_starts.push(self.out.len());
            }
            Role::List { ordered } => {
                self.ensure_newlines(1);
                self.lists.push(ListState { ordered, items: 0 });
            }
            Role::ListItem => {
                self.ensure_newlines(1);
                let depth = self.lists.len().max(1);
                let marker = match self.lists.last_mut() {
                    Some(list) => {
                        list.items += 1;
                        if list.ordered {
                            format!("{}. ", list.items)
                        } else {
                            "• ".to_string()
                        }
                    }
                    None => "• ".to_string(),
                };
                self.pending_bullet = Some(format!("{}{marker}", "  ".repeat(depth)));
            }
            Role::TableRow => {
                self.ensure_newlines(1);
                self.rows.push(0);
            }
            Role::TableCell => {
                let later_cell = self.rows.last_mut().is_some_and(|cells| {
                    *cells += 1;
                    *cells > 1
                });
                if later_cell {
                    self.flush_space();
                    self.pending_cell_separator = true;
                }
            }
            Role::Inline | Role::Hidden | Role::LineBreak | Role::Image => {}
        }
    }

    fn leave(&mut self, role: Role) {
        match role {
            Role::Block(n) => self.ensure_newlines(n.into()),
            Role::Preformatted => {
                // Trailing white space of the preformatted text is dropped.
                let start = self.pre_starts.pop().unwrap_or(0);
                let end = self.out.trim_end_matches(is_html_space).len().max(start);
                if end < self.out.len() {
                    self.out.truncate(end);
                    self.trailing_newlines = self.out.len() - self.out.trim_end_matches('\n').len();
                }
                self.ensure_newlines(1);
            }
            Role::List { .. } => {
                self.lists.pop();
                self.ensure_newlines(1);
            }
            Role::ListItem => {
                self.pending_bullet = None;
                self.ensure_newlines(1);
            }
            Role::TableRow => {
                self.rows.pop();
                self.ensure_newlines(1);
            }
            Role::TableCell | Role::Inline | Role::Hidden | Role::LineBreak | Role::Image => {}
        }
    }

    /// Writes a held-back space now (a cell separator or `<pre>` keeps it).
    fn flush_space(&mut self) {
        if self.pending_space && self.trailing_newlines == 0 && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.pending_space = false;
    }

    fn ensure_newlines(&mut self, n: usize) {
        if self.pending_space && self.trailing_newlines == 0 {
            self.space_before_breaks = true;
        }
        self.pending_space = false;
        if std::mem::take(&mut self.pending_cell_separator) {
            // A block opening a table cell replaces the line breaks before the cell.
            let end = self.out.trim_end_matches('\n').len();
            self.out.truncate(end);
            self.trailing_newlines = 0;
        }
        if self.out.is_empty() {
            return;
        }
        while self.trailing_newlines < n {
            self.push_newline();
        }
    }

    fn line_break(&mut self) {
        self.pending_space = false;
        self.pending_cell_separator = false;
        if !self.out.is_empty() {
            self.push_newline();
        }
    }

    fn push_newline(&mut self) {
        self.out.push('\n');
        self.trailing_newlines += 1;
    }

    fn text(&mut self, text: &str) {
        if !self.pre_starts.is_empty() {
            if text.is_empty() {
                return;
            }
            let len_before = self.out.len();
            let newlines_before = self.trailing_newlines;
            self.before_visible_text();
            self.out.push_str(text);
            let newlines = text.len() - text.trim_end_matches('\n').len();
            let only_newlines_added = self.out.len() - len_before == newlines;
            self.trailing_newlines = if only_newlines_added {
                newlines_before + newlines
            } else {
                newlines
            };
            return;
        }
        // Byte scan: the collapsible spaces are ASCII, so every cut is a char boundary.
        // Words already separated by single spaces are copied as one run.
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if is_html_space_byte(bytes[i]) {
                self.pending_space = true;
                i += 1;
                continue;
            }
            let start = i;
            loop {
                i = word_end(bytes, i);
                if bytes.get(i) == Some(&b' ')
                    && bytes.get(i + 1).is_some_and(|&b| !is_html_space_byte(b))
                {
                    i += 1;
                } else {
                    break;
                }
            }
            self.before_visible_text();
            self.out.push_str(&text[start..i]);
            self.trailing_newlines = 0;
        }
    }

    /// Writes what was held back: bullet or indentation at a line start, else a space; then
    /// a table-cell separator.
    fn before_visible_text(&mut self) {
        let at_line_start = self.out.is_empty() || self.trailing_newlines > 0;
        if let Some(bullet) = self.pending_bullet.take() {
            if at_line_start {
                self.out.push_str(&bullet);
            }
        } else if at_line_start {
            if !self.lists.is_empty() {
                let indent = 2 * self.lists.len() + 2;
                self.out.extend(std::iter::repeat_n(' ', indent));
            }
        } else if self.pending_space && !self.pending_cell_separator {
            self.out.push(' ');
        }
        if self.pending_cell_separator {
            self.out.push_str("\t\t");
        }
        self.pending_space = false;
        self.space_before_breaks = false;
        self.pending_cell_separator = false;
        self.trailing_newlines = 0;
    }
}

/// The first collapsible space at or after `i` (or the end). Eight bytes at a time first:
/// a word whose bytes are all above b' ' holds none.
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Non-zero exactly when some byte is below 0x21 (bytes >= 0x80 drop out by `!word`).
        if word.wrapping_sub(ONES * 0x21) & !word & HIGH_BITS != 0 {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && !is_html_space_byte(bytes[i]) {
        i += 1;
    }
    i
}

/// White space that HTML collapses (ASCII only: U+00A0 and other Unicode spaces are kept).
fn is_html_space(c: char) -> bool {
    c.is_ascii() && is_html_space_byte(c as u8)
}

fn is_html_space_byte(b: u8) -> bool {
    // All are at most b' '; one compare rules out almost every other byte.
    b <= b' ' && matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

#[cfg(test)]
mod tests {
    use super::extract_text as x;

    #[test]
    fn blocks_and_inline() {
        assert_eq!(x("<p>a</p><p>b</p>"), "a\n\nb");
        assert_eq!(x("<div>a<div>b</div>c</div>"), "a\nb\nc");
        assert_eq!(x("<p>a <b>b</b> c</p>"), "a b c");
        assert_eq!(x("<p>a<b>b </b> c</p>"), "ab c");
        assert_eq!(x("<p>a</p><br><br><br><br><p>b</p>"), "a\n\n\n\n\n\nb");
        assert_eq!(x("x<script>s</script>y<style>z</style>w"), "xyw");
        assert_eq!(x("<p>&nbsp;</p><p>b</p>"), "\u{a0}\n\nb");
        assert_eq!(x("<pre>\n\nx</pre>"), "\nx");
    }

    #[test]
    fn lists_and_tables() {
        assert_eq!(x("<ul><li>x<li>y</ul>"), "  • x\n  • y");
        assert_eq!(
            x("<ol><li>a<ol><li>b<li>c</ol><li>d</ol>"),
            "  1. a\n    1. b\n    2. c\n  2. d"
        );
        assert_eq!(x("<ul><li>a<p>b</p>c</li></ul>"), "  • a\n\n    b\n\n    c");
        assert_eq!(x("z<ul><li><p>a</p></li></ul>"), "z\n\n  • a");
        assert_eq!(x("<ul><li></li><li>b</li></ul>"), "  • b");
        assert_eq!(
            x("x<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>z"),
            "x\na\t\tb\nc\t\td\nz"
        );
        assert_eq!(
            x("<table><tr><td><p>a</p></td><td>b</td></tr></table>"),
            "a\n\n\t\tb"
        );
        assert_eq!(x("<table><tr><td></td><td>a</td></tr></table>"), "\t\ta");
        // White space between cells is not text; inside a cell it is kept before the next.
        assert_eq!(
            x("<table><tr><td>a</td>\n<td>b</td></tr></table>"),
            "a\t\tb"
        );
        assert_eq!(
            x("<table><tr><td>a </td>\n<td>b</td></tr></table>"),
            "a \t\tb"
        );
        assert_eq!(
            x("<table><tr><td><p>1</p></td><td><div>T</div></td></tr></table>"),
            "1\nT"
        );
    }

    #[test]
    fn preformatted_text() {
        assert_eq!(x("<pre>a <b> b</b>\n c</pre>"), "a  b\n c");
        assert_eq!(x("<p>a </p><pre>x</pre>"), "a \n\nx");
        assert_eq!(x("<pre>a  \n\n</pre>b"), "a\nb");
        assert_eq!(x("<pre>x\n</pre><div><p>G</p></div>"), "x\n\nG");
        assert_eq!(x("<ul><li>a <pre>x</pre></ul>"), "  • a \n    x");
    }
}
