//! fastText-format models, read and written by our own code (no fastText library): the
//! `.bin` and quantized `.ftz` layouts, fastText's tokenisation and hashing, prediction with
//! its probability semantics, supervised training, and the course's classifiers on top
//! (language ID, quality, NSFW/toxicity).

pub mod dictionary;
pub mod format;
pub mod langid;
pub mod matrix;
pub mod predict;
pub mod quality;
pub mod train;

use crate::{DataError, Result};
use dictionary::Dictionary;
use format::{Args, Loss, MAGIC, ModelKind, Reader, VERSION, Writer};
use matrix::Matrix;
use predict::{HuffmanTree, Output};
use std::path::{Path, PathBuf};

/// A loaded fastText supervised model.
pub struct FastText {
    pub args: Args,
    pub dict: Dictionary,
    input: Matrix,
    output: Matrix,
    tree: Option<HuffmanTree>,
    path: PathBuf,
}

/// One prediction: the label as stored in the model (with its `__label__` prefix) and its
/// probability as fastText reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub label: String,
    pub prob: f32,
}

impl FastText {
    /// Reads a `.bin` or `.ftz` file; every error names the file and what was wrong.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses model bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut r = Reader::new(bytes, path);
        let magic = r.i32("magic")?;
        if magic != MAGIC {
            return Err(r.error("magic", format!("{magic} is not fastText's {MAGIC}")));
        }
        let version = r.i32("version")?;
        if version != VERSION && version != 11 {
            return Err(r.error("version", format!("unsupported version {version}")));
        }
        let mut args = Args::read(&mut r)?;
        if version == 11 && args.model == ModelKind::Supervised {
            args.maxn = 0; // version-11 supervised models had no character n-grams
        }
        let dict = Dictionary::read(&mut r, &args)?;
        let quant_input = r.bool("quant_input")?;
        let input = Matrix::read(&mut r, quant_input, "input matrix")?;
        let quant_output = r.bool("qout")?;
        let output = Matrix::read(&mut r, quant_output, "output matrix")?;
        if !r.at_end() {
            return Err(r.error("end", "unexpected bytes after the output matrix"));
        }
        Self::assemble(args, dict, input, output, path)
    }

    /// Checks that the parts agree and builds the label tree for hierarchical softmax.
    pub(crate) fn assemble(
        args: Args,
        dict: Dictionary,
        input: Matrix,
        output: Matrix,
        path: &Path,
    ) -> Result<Self> {
        let bad = |reason: String| DataError::bad_file(path, format!("fastText model: {reason}"));
        if args.model != ModelKind::Supervised {
            return Err(bad(format!(
                "a {:?} (word-vector) model, not a classifier",
                args.model
            )));
        }
        let dim = args.dim as usize;
        let (in_rows, in_cols) = input.shape();
        if in_cols != dim || in_rows != dict.input_rows() {
            return Err(bad(format!(
                "input matrix is {in_rows}×{in_cols}, the dictionary needs {}×{dim}",
                dict.input_rows()
            )));
        }
        let (out_rows, out_cols) = output.shape();
        // One row per label for every loss (hierarchical softmax uses the first labels − 1).
        if out_cols != dim || out_rows != dict.nlabels || dict.nlabels == 0 {
            return Err(bad(format!(
                "output matrix is {out_rows}×{out_cols} for {} labels of dimension {dim}",
                dict.nlabels
            )));
        }
        if args.loss == Loss::NegativeSampling {
            return Err(bad(
                "negative-sampling loss is not supported for classification".into(),
            ));
        }
        let tree = (args.loss == Loss::HierarchicalSoftmax)
            .then(|| HuffmanTree::new(&dict.label_counts()));
        Ok(Self {
            args,
            dict,
            input,
            output,
            tree,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_quantized(&self) -> bool {
        self.input.is_quantized()
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        (0..self.dict.nlabels).map(|i| self.dict.label(i))
    }

    /// The mean of the input rows of `text`'s features (`None` when it has none).
    pub fn hidden(&self, text: &str) -> Option<Vec<f32>> {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        self.dict.line(text, &mut rows, &mut labels);
        self.hidden_of_rows(&rows)
    }

    fn hidden_of_rows(&self, rows: &[i32]) -> Option<Vec<f32>> {
        if rows.is_empty() {
            return None;
        }
        let mut hidden = vec![0.0f32; self.args.dim as usize];
        for &row in rows {
            self.input.add_row_to(&mut hidden, row as usize);
        }
        // fastText multiplies by the (float) reciprocal rather than dividing.
        let scale = (1.0 / rows.len() as f64) as f32;
        hidden.iter_mut().for_each(|h| *h *= scale);
        Some(hidden)
    }

    /// The `k` most likely labels with probability ≥ `threshold`, best first, as fastText's
    /// `predict(text, k, threshold)`: the text is one line (a newline ends it, as fastText's
    /// Python binding appends one, the end-of-sentence token counts as a word).
    pub fn predict(&self, text: &str, k: usize, threshold: f32) -> Vec<Prediction> {
        let line = if text.contains('\n') {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(format!("{text}\n"))
        };
        let Some(hidden) = self.hidden(&line) else {
            return Vec::new();
        };
        let output = Output {
            loss: self.args.loss,
            matrix: &self.output,
            tree: self.tree.as_ref(),
        };
        output
            .predict(&hidden, k, threshold)
            .into_iter()
            .map(|(i, prob)| Prediction {
                label: self.dict.label(i).to_string(),
                prob,
            })
            .collect()
    }

    /// The model in fastText's `.bin` layout (dense matrices only).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.input.is_quantized() || self.output.is_quantized() {
            return Err(DataError::invalid(
                self.path.display().to_string(),
                "writing quantized models is not supported",
            ));
        }
        let mut w = Writer::default();
        w.i32(MAGIC);
        w.i32(VERSION);
        self.args.write(&mut w);
        self.dict.write(&mut w);
        w.u8(0);
        self.input.write(&mut w);
        w.u8(0);
        self.output.write(&mut w);
        Ok(w.buf)
    }

    /// Saves atomically in `.bin` format.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        lm_core::fsutil::write_atomic(path, &bytes)?;
        Ok(())
    }
}

/// Strips fastText's `__label__` prefix.
pub fn strip_label(label: &str) -> &str {
    label
        .strip_prefix(dictionary::LABEL_PREFIX)
        .unwrap_or(label)
}
