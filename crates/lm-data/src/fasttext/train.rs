//! Supervised fastText training: word (and optional word/character n-gram) features averaged
//! into a hidden vector, softmax or hierarchical-softmax loss, plain SGD with a learning rate
//! decaying linearly to zero over all epochs. One thread, seeded: the same input and options
//! give the same model bit for bit. Differences from fastText's trainer (which make runs
//! not bit-identical to it, though the saved `.bin` loads in official fastText and predicts
//! the same there as here): the learning rate is updated per example rather than every
//! `lrUpdateRate` tokens, sigmoids are exact rather than table lookups, and the default bucket
//! count is 200 000 rather than 2 000 000.

use super::FastText;
use super::dictionary::{Dictionary, EOS, Entry, EntryKind, LABEL_PREFIX, tokens};
use super::format::{Args, Loss, ModelKind};
use super::matrix::Matrix;
use super::predict::{HuffmanTree, softmax};
use crate::{DataError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub dim: usize,
    pub epoch: usize,
    pub lr: f32,
    pub word_ngrams: usize,
    /// Hash buckets for word and character n-grams (unused, and stored as 0, without them).
    pub bucket: usize,
    pub minn: usize,
    pub maxn: usize,
    pub min_count: i64,
    pub loss: Loss,
    pub seed: u64,
}

impl Default for TrainOptions {
    /// fastText's supervised defaults, except a smaller bucket count.
    fn default() -> Self {
        Self {
            dim: 100,
            epoch: 5,
            lr: 0.1,
            word_ngrams: 1,
            bucket: 200_000,
            minn: 0,
            maxn: 0,
            min_count: 1,
            loss: Loss::Softmax,
            seed: 0,
        }
    }
}

/// Progress after each epoch: (epoch just finished, average loss over it).
pub type Progress<'a> = &'a mut dyn FnMut(usize, f64);

/// Trains on labeled text in fastText's format (`__label__x [__label__y] text` per line);
/// `source` names the input in errors.
pub fn train(
    labeled: &str,
    options: &TrainOptions,
    source: &Path,
    progress: Progress,
) -> Result<FastText> {
    let o = options;
    if o.dim == 0 || o.epoch == 0 || o.lr.is_nan() || o.lr <= 0.0 || o.minn > o.maxn {
        return Err(DataError::invalid(
            "training options",
            format!("need dim, epoch, lr > 0 and minn ≤ maxn: {o:?}"),
        ));
    }
    if !matches!(
        o.loss,
        Loss::Softmax | Loss::HierarchicalSoftmax | Loss::OneVsAll
    ) {
        return Err(DataError::invalid("loss", "use softmax, hs or ova"));
    }
    let uses_buckets = o.word_ngrams > 1 || o.maxn > 0;
    let args = Args {
        dim: o.dim as i32,
        ws: 5,
        epoch: o.epoch as i32,
        min_count: o.min_count as i32,
        neg: 5,
        word_ngrams: o.word_ngrams.max(1) as i32,
        loss: o.loss,
        model: ModelKind::Supervised,
        bucket: if uses_buckets { o.bucket as i32 } else { 0 },
        minn: o.minn as i32,
        maxn: o.maxn as i32,
        lr_update_rate: 100,
        t: 1e-4,
    };
    let dict = build_dictionary(labeled, &args, o.min_count);
    if dict.nlabels == 0 {
        return Err(DataError::bad_file(
            source,
            format!("no labels found (lines must start with {LABEL_PREFIX}<name>)"),
        ));
    }
    // Each example: its feature rows, its labels and its token count (for the lr schedule).
    let mut examples = Vec::new();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for line in labeled.lines() {
        let line = format!("{line}\n");
        dict.line(&line, &mut rows, &mut labels);
        let ntokens = tokens(&line).count();
        if !rows.is_empty() && !labels.is_empty() {
            examples.push((rows.clone(), labels.clone(), ntokens));
        }
    }
    if examples.is_empty() {
        return Err(DataError::bad_file(
            source,
            "no line has both a label and text",
        ));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let dim = o.dim;
    let mut input = Matrix::zeros(dict.input_rows(), dim);
    let bound = 1.0 / dim as f32;
    for r in 0..dict.input_rows() {
        for v in input.row_mut(r) {
            *v = rng.random_range(-bound..bound);
        }
    }
    let tree =
        (o.loss == Loss::HierarchicalSoftmax).then(|| HuffmanTree::new(&dict.label_counts()));
    let paths = tree.as_ref().map(|t| t.paths());
    let out_rows = dict.nlabels;
    let mut output = Matrix::zeros(out_rows, dim);

    let total_tokens: usize = examples.iter().map(|e| e.2).sum::<usize>() * o.epoch;
    let mut seen = 0usize;
    let mut hidden = vec![0.0f32; dim];
    let mut grad = vec![0.0f32; dim];
    let mut scores = vec![0.0f32; out_rows];
    for epoch in 0..o.epoch {
        let mut loss_sum = 0.0f64;
        for (rows, labels, ntokens) in &examples {
            let lr = o.lr * (1.0 - seen as f32 / total_tokens as f32);
            seen += ntokens;
            hidden.iter_mut().for_each(|h| *h = 0.0);
            for &r in rows {
                add(&mut hidden, input.row(r as usize), 1.0);
            }
            let scale = 1.0 / rows.len() as f32;
            hidden.iter_mut().for_each(|h| *h *= scale);
            grad.iter_mut().for_each(|g| *g = 0.0);
            loss_sum += match o.loss {
                Loss::Softmax => {
                    let target = labels[rng.random_range(0..labels.len())] as usize;
                    for (i, s) in scores.iter_mut().enumerate() {
                        *s = dot(output.row(i), &hidden);
                    }
                    softmax(&mut scores);
                    for (i, &p) in scores.iter().enumerate() {
                        let alpha = lr * ((i == target) as u8 as f32 - p);
                        add(&mut grad, output.row(i), alpha);
                        add(output.row_mut(i), &hidden, alpha);
                    }
                    -(scores[target].max(1e-10) as f64).ln()
                }
                Loss::HierarchicalSoftmax => {
                    let target = labels[rng.random_range(0..labels.len())] as usize;
                    let path = &paths.as_ref().unwrap()[target];
                    let mut loss = 0.0;
                    for &(node, right) in path {
                        loss += binary_logistic(&mut output, node, right, &hidden, &mut grad, lr);
                    }
                    loss
                }
                _ => {
                    let mut loss = 0.0;
                    for i in 0..out_rows {
                        let positive = labels.contains(&(i as i32));
                        loss += binary_logistic(&mut output, i, positive, &hidden, &mut grad, lr);
                    }
                    loss
                }
            };
            grad.iter_mut().for_each(|g| *g *= scale);
            for &r in rows {
                add(input.row_mut(r as usize), &grad, 1.0);
            }
        }
        progress(epoch + 1, loss_sum / examples.len() as f64);
    }
    FastText::assemble(args, dict, input, output, source)
}

/// Counts words and labels; keeps words seen `min_count` times; orders words then labels,
/// each by decreasing count (ties: first seen first), with the end-of-line token counted
/// once per line, as fastText does.
fn build_dictionary(labeled: &str, args: &Args, min_count: i64) -> Dictionary {
    let mut counts: FxHashMap<&str, (i64, usize)> = FxHashMap::default();
    let mut ntokens = 0i64;
    let note = |t: &'static str, counts: &mut FxHashMap<&str, (i64, usize)>| {
        let next = counts.len();
        counts.entry(t).or_insert((0, next)).0 += 1;
    };
    for line in labeled.lines() {
        for token in line.split([' ', '\t', '\r', '\u{b}', '\u{c}', '\0']) {
            if token.is_empty() {
                continue;
            }
            ntokens += 1;
            let next = counts.len();
            counts.entry(token).or_insert((0, next)).0 += 1;
        }
        ntokens += 1;
        note(EOS, &mut counts);
    }
    let mut entries: Vec<(Entry, usize)> = counts
        .into_iter()
        .map(|(text, (count, first))| {
            let kind = if text.starts_with(LABEL_PREFIX) {
                EntryKind::Label
            } else {
                EntryKind::Word
            };
            let entry = Entry {
                text: text.to_string(),
                count,
                kind,
            };
            (entry, first)
        })
        .filter(|(e, _)| e.kind == EntryKind::Label || e.count >= min_count)
        .collect();
    entries.sort_by(|(a, fa), (b, fb)| {
        (a.kind as u8)
            .cmp(&(b.kind as u8))
            .then(b.count.cmp(&a.count))
            .then(fa.cmp(fb))
    });
    let entries = entries.into_iter().map(|(e, _)| e).collect();
    Dictionary::new(entries, ntokens, None, args)
}

/// One binary logistic step on output row `row` (a tree node or a one-vs-all label) toward
/// `label`: accumulates the input gradient, updates the row, returns the row's loss.
fn binary_logistic(
    output: &mut Matrix,
    row: usize,
    label: bool,
    hidden: &[f32],
    grad: &mut [f32],
    lr: f32,
) -> f64 {
    let f = sigmoid(dot(output.row(row), hidden));
    let alpha = lr * (label as u8 as f32 - f);
    add(grad, output.row(row), alpha);
    add(output.row_mut(row), hidden, alpha);
    let p = if label { f } else { 1.0 - f };
    -(p.max(1e-10) as f64).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn add(dst: &mut [f32], src: &[f32], alpha: f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += alpha * s;
    }
}
