//! `pipeline.toml`: what `lm data run` reads, with defaults a first run can use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub input: InputConfig,
    pub output: OutputConfig,
    #[serde(default)]
    pub filters: FilterConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub tokenize: Option<TokenizeConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// WARC/WET files, directories (every *.warc, *.warc.gz, *.wet, *.wet.gz inside) or glob
    /// patterns; relative paths are relative to the config file.
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Jsonl,
    Parquet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub dir: PathBuf,
    #[serde(default)]
    pub format: OutputFormat,
    /// Dropped documents kept as examples per stage (in `examples.jsonl`).
    #[serde(default = "default_examples")]
    pub examples_per_stage: usize,
}

fn default_examples() -> usize {
    5
}

/// A fastText-format classifier used as a filter: documents whose probability for
/// `label` is at least `threshold` are dropped (`drop_if_label`) or kept (`keep_if_label`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierFilter {
    pub model: PathBuf,
    /// The label (without `__label__`) the threshold applies to.
    pub label: String,
    pub threshold: f32,
    /// true: keep documents with the label (quality "wiki"); false: drop them (nsfw, toxic).
    #[serde(default)]
    pub keep: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Documents with fewer characters of extracted text are dropped.
    #[serde(default = "default_min_chars")]
    pub min_chars: usize,
    /// fastText language-ID model; with `languages` empty, languages are only recorded.
    #[serde(default)]
    pub language_model: Option<PathBuf>,
    /// Keep only these languages (ISO codes as the model writes them, e.g. "en").
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default = "default_language_score")]
    pub min_language_score: f32,
    /// The Gopher quality rules.
    #[serde(default = "yes")]
    pub gopher: bool,
    /// Harmful-content and quality classifiers, applied in this order.
    #[serde(default)]
    pub classifiers: Vec<NamedClassifier>,
    /// PII masked in kept text: any of "email", "phone", "ip".
    #[serde(default = "default_pii")]
    pub mask_pii: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedClassifier {
    /// The stage's name in the counters (e.g. "nsfw", "toxic", "quality").
    pub name: String,
    #[serde(flatten)]
    pub filter: ClassifierFilter,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            min_chars: default_min_chars(),
            language_model: None,
            languages: Vec::new(),
            min_language_score: default_language_score(),
            gopher: true,
            classifiers: Vec::new(),
            mask_pii: default_pii(),
        }
    }
}

fn default_min_chars() -> usize {
    200
}

fn default_language_score() -> f32 {
    0.5
}

fn yes() -> bool {
    true
}

fn default_pii() -> Vec<String> {
    vec!["email".into(), "phone".into(), "ip".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Remove every line that occurs more than once across the kept documents.
    #[serde(default = "yes")]
    pub exact_lines: bool,
    /// MinHash + LSH near-duplicate removal (after the line pass); absent = off.
    #[serde(default)]
    pub minhash: Option<MinhashConfig>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            exact_lines: true,
            minhash: Some(MinhashConfig::default()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinhashConfig {
    pub num_hashes: usize,
    pub num_bands: usize,
    pub ngrams: usize,
    pub threshold: f64,
}

impl Default for MinhashConfig {
    fn default() -> Self {
        Self {
            num_hashes: 100,
            num_bands: 10,
            ngrams: 5,
            threshold: 0.8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// A lab-1 tokenizer directory (`lm tokenizer train --out`).
    pub tokenizer: PathBuf,
}

impl PipelineConfig {
    /// Reads `path`; relative paths inside are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut cfg: Self =
            toml::from_str(&text).map_err(|e| DataError::bad_file(path, e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(base);
        cfg.validate()
            .map_err(|e| DataError::bad_file(path, e.to_string()))?;
        Ok(cfg)
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in &mut self.input.paths {
            if Path::new(p).is_relative() {
                *p = base.join(&*p).to_string_lossy().into_owned();
            }
        }
        fix(&mut self.output.dir);
        if let Some(m) = &mut self.filters.language_model {
            fix(m);
        }
        for c in &mut self.filters.classifiers {
            fix(&mut c.filter.model);
        }
        if let Some(t) = &mut self.tokenize {
            fix(&mut t.tokenizer);
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.input.paths.is_empty() {
            return Err(DataError::invalid("input.paths", "is empty"));
        }
        if !self.filters.languages.is_empty() && self.filters.language_model.is_none() {
            return Err(DataError::invalid(
                "filters.languages",
                "needs filters.language_model (a fastText language-ID model)",
            ));
        }
        for kind in &self.filters.mask_pii {
            if !["email", "phone", "ip"].contains(&kind.as_str()) {
                return Err(DataError::invalid(
                    "filters.mask_pii",
                    format!("`{kind}`: use email, phone or ip"),
                ));
            }
        }
        if let Some(m) = &self.dedup.minhash
            && (m.num_bands == 0 || m.num_hashes % m.num_bands != 0)
        {
            return Err(DataError::invalid(
                "dedup.minhash",
                format!(
                    "num_hashes ({}) must be a multiple of num_bands ({})",
                    m.num_hashes, m.num_bands
                ),
            ));
        }
        Ok(())
    }

    /// The input files, sorted, deduplicated.
    pub fn input_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for p in &self.input.paths {
            let path = Path::new(p);
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|e| DataError::io(path, e))?;
                for e in entries {
                    let f = e.map_err(|e| DataError::io(path, e))?.path();
                    if is_warc_name(&f) {
                        files.push(f);
                    }
                }
            } else if path.exists() {
                files.push(path.to_path_buf());
            } else {
                let matches = glob::glob(p)
                    .map_err(|e| DataError::invalid("input.paths", format!("`{p}`: {e}")))?;
                let before = files.len();
                files.extend(matches.filter_map(|m| m.ok()).filter(|f| f.is_file()));
                if files.len() == before {
                    return Err(DataError::invalid(
                        "input.paths",
                        format!("`{p}` matches no file"),
                    ));
                }
            }
        }
        files.sort();
        files.dedup();
        Ok(files)
    }
}

fn is_warc_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [".warc", ".warc.gz", ".wet", ".wet.gz"]
        .iter()
        .any(|s| name.ends_with(s))
}
