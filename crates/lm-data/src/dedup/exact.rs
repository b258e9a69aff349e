//! Exact line deduplication across a collection: a line that occurs more than once anywhere
//! (in one file or several) is removed from every file, with no copy kept.
//!
//! Two passes over the files, streaming: (1) count each line's 128-bit hash — memory is
//! bounded by the number of distinct lines, not their length; (2) rewrite each file keeping
//! the lines counted once. Files are processed in parallel in both passes.
//!
//! A line is compared without its terminator ("\n" or "\r\n"), so a last line without a
//! newline is the same line as that text followed by one. Kept lines are written byte for
//! byte as they were, terminator (or its absence) included.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use lm_core::fsutil::AtomicFile;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use super::{create_dir, output_paths};
use crate::error::{DataError, Result};

/// Counts of one [`exact_line_dedup`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExactDedupReport {
    pub files: usize,
    pub lines: u64,
    pub distinct_lines: u64,
    pub kept_lines: u64,
}

/// Line hash → occurrences, saturating at 2 (only "once" vs "more" matters).
type LineCounts = FxHashMap<u128, u8>;

/// Removes every line that occurs more than once in `inputs` and writes each file's remaining
/// lines to `out_dir/<its file name>` (created if needed).
pub fn exact_line_dedup(inputs: &[PathBuf], out_dir: &Path) -> Result<ExactDedupReport> {
    let outputs = output_paths(inputs, out_dir)?;
    create_dir(out_dir)?;

    let counts = inputs
        .par_iter()
        .map(|path| count_lines(path))
        .try_reduce(LineCounts::default, |a, b| Ok(merge(a, b)))?;

    let (lines, kept_lines) = inputs
        .par_iter()
        .zip(&outputs)
        .map(|(input, output)| rewrite(input, output, &counts))
        .try_reduce(|| (0, 0), |a, b| Ok((a.0 + b.0, a.1 + b.1)))?;
    Ok(ExactDedupReport {
        files: inputs.len(),
        lines,
        distinct_lines: counts.len() as u64,
        kept_lines,
    })
}

fn line_key(line: &[u8]) -> u128 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    xxh3_128(line)
}

fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// Calls `f` on each line of `path`, terminator included.
fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut reader = open(path)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        f(&line)?;
    }
}

fn count_lines(path: &Path) -> Result<LineCounts> {
    let mut counts = LineCounts::default();
    for_each_line(path, |line| {
        let c = counts.entry(line_key(line)).or_insert(0);
        *c = c.saturating_add(1).min(2);
        Ok(())
    })?;
    Ok(counts)
}

fn merge(a: LineCounts, b: LineCounts) -> LineCounts {
    let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (key, n) in small {
        let c = big.entry(key).or_insert(0);
        *c = c.saturating_add(n).min(2);
    }
    big
}

/// Writes the lines of `input` counted once to `output`; returns (lines read, lines kept).
fn rewrite(input: &Path, output: &Path, counts: &LineCounts) -> Result<(u64, u64)> {
    let mut out = AtomicFile::create(output)?;
    let (mut lines, mut kept) = (0u64, 0u64);
    for_each_line(input, |line| {
        lines += 1;
        if counts.get(&line_key(line)) == Some(&1) {
            kept += 1;
            out.write_all(line).map_err(|e| DataError::io(output, e))?;
        }
        Ok(())
    })?;
    out.commit()?;
    Ok((lines, kept))
}
