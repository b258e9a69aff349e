//! The fast HTML tokenizer against html5ever's spec tokenizer, both feeding the same tree
//! builder and renderer: the extracted text must be identical on tricky markup, on random
//! tag soup, and on every real page of `$LM_ASSETS/html`.

mod common;
use common::html_pages;

use lm_data::html::decode_html;
use lm_data::html::render::{extract_text, extract_text_with_html5ever_tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn assert_agrees(html: &str) {
    assert_eq!(
        extract_text(html),
        extract_text_with_html5ever_tokenizer(html),
        "input: {html:?}"
    );
}

#[test]
fn tricky_markup() {
    for html in [
        // Character references, in text and attributes (`<img alt>` is rendered).
        "a &amp; b &lt;c&gt; &notit; &notin; &copy &copyx &#233; &#x1F600; &#0; &#128; &#; &bogus; &",
        "<img alt='&copy=2 &copy;=2 &copy 2 &amp;x'> <img alt=\"x&#x41;y\"> <img alt=u&lt;v>",
        "<img alt='a' alt='b'> <img ALT='c' alt='d'> <IMG ALT=Caps> <img alt> <img alt=>x <img/alt=q>",
        // Tags: case, self-closing, junk, attributes with odd names, cut-off tags.
        "<P>one<BR/>two</P><p/>three<p =x>four<p a=\"b>c\">five</p>",
        "x < y <3 a<b </ > </> <//p> <?php echo 1 ?> <!x> </3 z",
        "<p>text<p a='unterminated>rest",
        "<div>cut <a href=x",
        // Comments in all their endings.
        "a<!-- c -->b<!---->c<!-->d<!--->e<!-- x --!>f<!-- -- y --->g<!-- -\u{2d}!-->h<!--",
        "<!-- <!-- nested --> after",
        // DOCTYPEs and quirks mode (a table does not close a <p> in quirks mode).
        "<!DOCTYPE html><p>a<table><tr><td>b</table>c",
        "<p>a<table><tr><td>b</table>c",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"><p>a<table><td>b</table>",
        "<!doctype html public '-//W3C//DTD HTML 4.01//EN' 'http://www.w3.org/TR/html4/strict.dtd'><p>a<table><td>b</table>",
        "<!DOCTYPE html SYSTEM><p>a<table><td>b</table>",
        "<!DOCTYPE><p>a<table><td>b</table>",
        "<!DOCTYPE html PUBLIC\"x\"'y' junk><p>a<table><td>b</table>",
        "<!DOCTYPE html PUBLIC \"-//W3O//DTD W3 HTML Strict 3.0//EN//\"><p>a<table><td>b</table>",
        "<!DOCTYPE html PUBLIC \"abrupt><p>a<table><td>b</table>",
        // Raw text: title, textarea (with references), style, xmp, noscript, plaintext.
        "<title>T &amp; </titlex> </TITLE >after</title><p>body",
        "<textarea>\nfirst &lt; </textarea2></textarea>x",
        "<style>p{}</p><b></style >y<xmp><b>z</xmp>w<noscript><p>n</noscript>v",
        "<p>a<plaintext>b</plaintext><p>c",
        "<pre>\nkept\n\n</pre><pre>\n\nsecond</pre>",
        // Script data and its escape states.
        "<script>a</script>b",
        "<script>if (a<b) x = '</scr' + 'ipt>';</script>after",
        "<script><!-- document.write('<script>x</script>'); --></script>after",
        "<script><!-- <script> </script> still --> </script>after",
        "<script><!--<script></script>--></script>after",
        "<script><!-- --></script>after",
        "<script><!-></script>after",
        "<script><!--- x -></script>after",
        "<script><!-- <scriptx> </script>after",
        "<script><!-- <script </script> --> </script>after",
        "<script><!-- <script>-</script>-->--></script>after",
        "<script></script/>after",
        "<script>unterminated",
        "<script></scri",
        // Formatting elements that differ only in attributes, then misnested end tags.
        "<b x=1><b x=2><b x=3><b x=4>a</b></b></b><p>d</b>e</p>f",
        "<b x=1><b x=2><b x=3><b x=4><p>a</b></b></b></b>b<div>c</b>d</div>e",
        "<a href=1><i x=1><i x=2><i x=3><i x=4><div>x</i></i></i></i></a>y</div>z",
        // Foreign content: CDATA only counts inside SVG or MathML.
        "<svg><![CDATA[ a < b ]]></svg>c<![CDATA[ d ]]>e",
        "<math><mi>x</mi><annotation-xml encoding='text/html'><p>h</p></annotation-xml></math>",
        "<svg><font color=red>f</font></svg><svg><font>g</font></svg>",
        // Tables with hidden inputs; NUL characters; CR and CRLF.
        "<table><input type=hidden><input type=text>t<tr><td>c</table>",
        "a\0b<p\0q>c</p\0q>\0<img alt='\0'>",
        "a\r\nb\rc\r\n\r\n<pre>\r\nx</pre>",
        "\u{feff}<p>bom</p>",
        "<template><p>t</p></template><template shadowrootmode=open><p>s</p></template>",
        "",
        "<",
        "&",
        "<!",
        "</",
        "<!DOCTYPE",
    ] {
        assert_agrees(html);
    }
}

/// Random tag soup from markup fragments: thousands of inputs, seeded.
#[test]
fn random_tag_soup() {
    const PIECES: &[&str] = &[
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<b>",
        "</b>",
        "<a href='x'>",
        "</a>",
        "<table>",
        "<tr>",
        "<td>",
        "</td>",
        "</table>",
        "<li>",
        "<ul>",
        "</ul>",
        "<ol>",
        "<br>",
        "<pre>",
        "</pre>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<title>",
        "</title>",
        "<textarea>",
        "</textarea>",
        "<!--",
        "-->",
        "--!>",
        "<!-->",
        "<![CDATA[",
        "]]>",
        "<svg>",
        "</svg>",
        "<math>",
        "<img alt='i&amp;'>",
        "<img alt=",
        "\"",
        "'",
        "<",
        ">",
        "/",
        "=",
        "&",
        "&amp;",
        "&#65;",
        "&lt",
        "&notin;",
        "\0",
        "\r\n",
        "\n",
        " ",
        "\t",
        "word",
        "x",
        "<!DOCTYPE html>",
        "<!doctype",
        "PUBLIC",
        "<?",
        "</",
        "<input type=hidden>",
        "<select>",
        "<option>",
        "<frameset>",
        "<noscript>",
        "<plaintext>",
        "<h1>",
        "<head>",
        "<body>",
        "<html>",
        "<font color=red>",
        "<template>",
        "</template>",
        "<xmp>",
        "-",
        "!",
        "<!--<script>",
        "</script ",
        "<scrip",
        "t>",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(336);
    for _ in 0..4_000 {
        let n = rng.random_range(1..40);
        let html: String = (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect();
        assert_agrees(&html);
    }
}

/// Every page of `$LM_ASSETS/html` (4,898 pages in 25 languages).
#[test]
fn real_pages() {
    let Some(pages) = html_pages() else { return };
    for page in &pages {
        let decoded = decode_html(&std::fs::read(&page.path).unwrap(), None);
        let ours = extract_text(&decoded.text);
        let reference = extract_text_with_html5ever_tokenizer(&decoded.text);
        assert!(ours == reference, "{}: texts differ", page.path.display());
    }
    assert!(pages.len() > 4_000, "only {} pages", pages.len());
}
