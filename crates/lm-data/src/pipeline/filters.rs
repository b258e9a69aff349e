//! The per-document stages, in order: minimum length, language ID, Gopher rules, the
//! configured classifiers, then PII masking of what is kept.

use std::borrow::Cow;

use crate::error::Result;
use crate::fasttext::langid::LanguageIdentifier;
use crate::fasttext::{FastText, strip_label};
use crate::gopher::gopher_report;
use crate::pii::{mask_emails, mask_ips, mask_phone_numbers};

use super::config::{ClassifierFilter, FilterConfig};
use super::document::Document;

/// Why a document was dropped: the stage's name and a short reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub stage: String,
    pub reason: String,
}

pub struct Filters {
    min_chars: usize,
    language: Option<(LanguageIdentifier, Vec<String>, f32)>,
    gopher: bool,
    /// (stage name, model, settings, the model's label count: predictions ask for all).
    classifiers: Vec<(String, FastText, ClassifierFilter, usize)>,
    pii: Vec<String>,
}

/// The stage names in order, for counters.
pub fn stage_names(cfg: &FilterConfig) -> Vec<String> {
    let mut names = vec!["length".to_string()];
    if cfg.language_model.is_some() {
        names.push("language".into());
    }
    if cfg.gopher {
        names.push("gopher".into());
    }
    names.extend(cfg.classifiers.iter().map(|c| c.name.clone()));
    names
}

impl Filters {
    /// Loads every model the config names (errors name the model file).
    pub fn load(cfg: &FilterConfig) -> Result<Self> {
        let language = match &cfg.language_model {
            Some(path) => Some((
                LanguageIdentifier::load(path)?,
                cfg.languages.clone(),
                cfg.min_language_score,
            )),
            None => None,
        };
        let classifiers = cfg
            .classifiers
            .iter()
            .map(|c| {
                let model = FastText::load(&c.filter.model)?;
                let labels = model.labels().count();
                Ok((c.name.clone(), model, c.filter.clone(), labels))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            min_chars: cfg.min_chars,
            language,
            gopher: cfg.gopher,
            classifiers,
            pii: cfg.mask_pii.clone(),
        })
    }

    /// Runs the stages on `doc`: `Ok(())` if kept (its text then PII-masked, language and
    /// scores recorded), else which stage dropped it.
    pub fn apply(&self, doc: &mut Document) -> std::result::Result<(), Dropped> {
        let drop = |stage: &str, reason: String| {
            Err(Dropped {
                stage: stage.into(),
                reason,
            })
        };
        let chars = doc.text.chars().count();
        if chars < self.min_chars {
            return drop("length", format!("{chars} characters < {}", self.min_chars));
        }
        if let Some((model, wanted, min_score)) = &self.language {
            let (lang, score) = model.identify(&doc.text);
            doc.language = Some(lang.clone());
            doc.language_score = Some(score);
            if !wanted.is_empty() && (!wanted.contains(&lang) || score < *min_score) {
                return drop("language", format!("{lang} ({score:.3})"));
            }
        }
        if self.gopher {
            let report = gopher_report(&doc.text);
            if !report.keep() {
                let failed: Vec<&str> = report.failed.iter().map(|r| r.name()).collect();
                return drop("gopher", failed.join(", "));
            }
        }
        // fastText predicts one line: the document is joined once for every classifier.
        let line = if self.classifiers.is_empty() {
            Cow::Borrowed("")
        } else {
            crate::fasttext::langid::one_line(&doc.text)
        };
        for (name, model, f, labels) in &self.classifiers {
            let score = model
                .predict(&line, *labels, 0.0)
                .into_iter()
                .find(|p| strip_label(&p.label) == f.label)
                .map_or(0.0, |p| p.prob);
            doc.scores.insert(name.clone(), score);
            let has_label = score >= f.threshold;
            if has_label != f.keep {
                return drop(name, format!("{} {score:.3}", f.label));
            }
        }
        for kind in &self.pii {
            let (masked, n) = match kind.as_str() {
                "email" => mask_emails(&doc.text),
                "phone" => mask_phone_numbers(&doc.text),
                _ => mask_ips(&doc.text),
            };
            doc.text = masked;
            doc.pii_masked += n;
        }
        Ok(())
    }
}
