//! Text classifiers on fastText models: the course's `classify_nsfw`,
//! `classify_toxic_speech` (Dolma's Jigsaw models, when the user has them) and
//! `classify_quality` ("wiki" vs "cc"), with a recipe that trains the quality model from
//! data available here (see [`quality_training_data`]).

use super::langid::{assets_dir, one_line};
use super::train::{TrainOptions, train};
use super::{FastText, strip_label};
use crate::{DataError, Result};
use std::path::{Path, PathBuf};

/// A fastText classifier returning its best label (without `__label__`) and probability.
pub struct TextClassifier {
    model: FastText,
    normalize: bool,
}

impl TextClassifier {
    /// Loads any supervised fastText model (`.bin` or `.ftz`).
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(DataError::bad_file(path, "classifier model not found"));
        }
        Ok(Self::new(FastText::load(path)?))
    }

    pub fn new(model: FastText) -> Self {
        Self {
            model,
            normalize: false,
        }
    }

    /// A quality model: inputs get the same normalisation as its training data.
    pub fn quality(model: FastText) -> Self {
        Self {
            model,
            normalize: true,
        }
    }

    pub fn model(&self) -> &FastText {
        &self.model
    }

    /// The best label and its probability (`("", 0.0)` when the text has no feature).
    pub fn classify(&self, text: &str) -> (String, f32) {
        let line = if self.normalize {
            quality_features(text).into()
        } else {
            one_line(text)
        };
        match self.model.predict(&line, 1, 0.0).into_iter().next() {
            Some(p) => (strip_label(&p.label).to_string(), p.prob),
            None => (String::new(), 0.0),
        }
    }
}

/// Where Dolma's Jigsaw NSFW model is looked for: `$LM_ASSETS/fasttext/`.
pub fn nsfw_model_path() -> PathBuf {
    assets_dir().join("fasttext/dolma_fasttext_nsfw_jigsaw_model.bin")
}

/// Where Dolma's Jigsaw hate-speech model is looked for: `$LM_ASSETS/fasttext/`.
pub fn toxic_model_path() -> PathBuf {
    assets_dir().join("fasttext/dolma_fasttext_hatespeech_jigsaw_model.bin")
}

/// Where `lm data train-quality` saves the quality model by default.
pub fn quality_model_path() -> PathBuf {
    assets_dir().join("fasttext/quality.bin")
}

/// The quality model's view of a document, on one line: each line of the text becomes a
/// line-length token (`__words1-4__`, `__words5-9__`, `__words10-19__`, `__words20+__`:
/// boilerplate comes in short lines, articles in paragraphs) followed by its words,
/// lower-cased, with punctuation and symbols split off and a `__cap__` token before each
/// capitalised word (navigation and titles are Title Case). Used for training and inputs.
pub fn quality_features(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        let words = line.split_whitespace().count();
        let marker = match words {
            0 => continue,
            1..=4 => "__words1-4__",
            5..=9 => "__words5-9__",
            10..=19 => "__words10-19__",
            _ => "__words20+__",
        };
        out.push_str(marker);
        out.push(' ');
        for word in line.split_whitespace() {
            if word.chars().next().is_some_and(char::is_uppercase) {
                out.push_str("__cap__ ");
            }
            for c in word.chars() {
                if c.is_alphanumeric() {
                    out.extend(c.to_lowercase());
                } else {
                    if !out.ends_with(' ') {
                        out.push(' ');
                    }
                    out.push(c);
                    out.push(' ');
                }
            }
            if !out.ends_with(' ') {
                out.push(' ');
            }
        }
    }
    out.trim_end().to_string()
}

/// Labeled training lines for the quality classifier, built from what this project has:
///
/// * `__label__wiki`: well-formed prose — paragraphs (≥ 25 words, cut into chunks of at
///   most 120; the corpus' hard line wrapping undone) of the English prose corpus, and the
///   `<p>` paragraphs of the HTML pages;
/// * `__label__cc`: the boilerplate of the same HTML pages — link texts, list items,
///   headings, table cells and titles (navigation, tables of contents, footers) of ≤ 12 words,
///   one per line, grouped by page into documents of 5–60 words.
///
/// `max_per_label` caps each side (taking every n-th example) to keep training fast.
pub fn quality_training_data(prose: &str, html_pages: &[String], max_per_label: usize) -> String {
    let mut good: Vec<String> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    for doc in prose.split("<|endoftext|>") {
        for para in doc.split("\n\n") {
            let words: Vec<&str> = para.split_whitespace().collect();
            good.extend(
                words
                    .chunks(120)
                    .filter(|c| c.len() >= 25)
                    .map(|c| c.join(" ")),
            );
        }
    }
    for page in html_pages {
        good.extend(
            elements(page, "p")
                .into_iter()
                .filter(|p| p.split_whitespace().count() >= 25),
        );
        let mut boiler: Vec<String> = Vec::new();
        for tag in ["title", "a", "li", "h1", "h2", "h3", "th", "td", "option"] {
            boiler.extend(
                elements(page, tag)
                    .into_iter()
                    .filter(|t| (1..=12).contains(&t.split_whitespace().count())),
            );
        }
        bad.extend(runs(&boiler, 5, 60));
    }
    let mut out = String::new();
    for (label, examples) in [("wiki", &good), ("cc", &bad)] {
        let step = examples.len().div_ceil(max_per_label.max(1)).max(1);
        for e in examples.iter().step_by(step) {
            out.push_str("__label__");
            out.push_str(label);
            out.push(' ');
            out.push_str(&quality_features(e));
            out.push('\n');
        }
    }
    out
}

/// [`quality_training_data`] from `assets` (`$LM_ASSETS`): `corpora/english-prose-train.txt`
/// and the English pages under `html/` (Debian handbook `en-US`, installation guide `en`).
pub fn default_quality_training_data(assets: &Path, max_per_label: usize) -> Result<String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| DataError::io(p, e));
    let prose_path = assets.join("corpora/english-prose-train.txt");
    let prose = String::from_utf8_lossy(&read(&prose_path)?).into_owned();
    let mut pages = Vec::new();
    for dir in ["html/debian-handbook/en-US", "html/installation-guide/en"] {
        let dir = assets.join(dir);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "html"))
            .collect();
        paths.sort();
        for p in paths {
            pages.push(String::from_utf8_lossy(&read(&p)?).into_owned());
        }
    }
    Ok(quality_training_data(&prose, &pages, max_per_label))
}

/// Trains the quality classifier (seeded, deterministic) on [`quality_training_data`].
pub fn train_quality_model(labeled: &str, seed: u64) -> Result<FastText> {
    let options = TrainOptions {
        dim: 16,
        epoch: 5,
        lr: 0.2,
        word_ngrams: 2,
        bucket: 50_000,
        seed,
        ..TrainOptions::default()
    };
    train(
        labeled,
        &options,
        Path::new("quality training data"),
        &mut |_, _| {},
    )
}

/// Groups consecutive short texts into documents of `min..=max` words, one text per line.
fn runs(texts: &[String], min: usize, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut words) = (String::new(), 0);
    for t in texts {
        cur.push_str(t);
        cur.push('\n');
        words += t.split_whitespace().count();
        // Vary document lengths: every other one closes as soon as it is long enough.
        if words >= max || (words >= min && out.len() % 2 == 0) {
            out.push(std::mem::take(&mut cur));
            words = 0;
        }
    }
    if words >= min {
        out.push(cur);
    }
    out
}

/// The text of every `<tag …>…</tag>` element (tags inside removed, common entities
/// decoded). A crude scanner, enough for building training data from well-formed pages.
pub fn elements(html: &str, tag: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find(&open) {
        let start = pos + i + open.len();
        let boundary = lower[start..].chars().next();
        if !matches!(boundary, Some('>' | ' ' | '\n' | '\t' | '\r' | '/')) {
            pos = start;
            continue;
        }
        let Some(gt) = lower[start..].find('>') else {
            break;
        };
        let body = start + gt + 1;
        let Some(end) = lower[body..].find(&close) else {
            break;
        };
        let text = strip_tags(&html[body..body + end]);
        if !text.is_empty() {
            out.push(text);
        }
        pos = body + end + close.len();
    }
    out
}

fn strip_tags(fragment: &str) -> String {
    let mut text = String::with_capacity(fragment.len());
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&copy;", "©")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_finds_text_of_tags() {
        let html =
            "<p class=x>Hello <b>big</b> world</p><pre>no</pre><a href=1>Home &amp; away</a>";
        assert_eq!(elements(html, "p"), ["Hello big world"]);
        assert_eq!(elements(html, "a"), ["Home & away"]);
    }

    #[test]
    fn features_split_punctuation() {
        assert_eq!(
            quality_features("Get paid!\n\nNow ©2018"),
            "__words1-4__ __cap__ get paid ! __words1-4__ __cap__ now © 2018"
        );
    }
}
