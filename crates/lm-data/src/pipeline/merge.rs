//! The final step over every finished shard: cross-document exact-line and MinHash
//! deduplication, the outputs (documents, tokens, stats, examples).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::{MinHasher, MinhashParams, cluster_near_duplicates};
use crate::error::{DataError, Result};

use super::config::PipelineConfig;
use super::document::Document;
use super::output::write_documents;
use super::shard::{finished, shard_paths};
use super::stats::Stats;

/// What the merge wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MergeOutputs {
    pub documents: PathBuf,
    pub tokens: Option<PathBuf>,
    pub token_count: u64,
}

/// Merges the shards of `files` (every one must be finished) into the outputs.
pub fn merge(cfg: &PipelineConfig, files: &[PathBuf]) -> Result<(Stats, MergeOutputs)> {
    let found: Vec<Option<Stats>> = files.iter().map(|f| finished(&cfg.output.dir, f)).collect();
    let missing: Vec<String> = files
        .iter()
        .zip(&found)
        .filter(|(_, s)| s.is_none())
        .map(|(f, _)| f.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::invalid(
            "merge",
            format!(
                "{} shards are not finished (run them first): {}",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    merge_shards(cfg, files, found.into_iter().flatten().collect())
}

/// [`merge`] with each file's shard stats already at hand (`shard_stats[i]` is `files[i]`'s).
pub(super) fn merge_shards(
    cfg: &PipelineConfig,
    files: &[PathBuf],
    shard_stats: Vec<Stats>,
) -> Result<(Stats, MergeOutputs)> {
    let out = &cfg.output.dir;
    let k = cfg.output.examples_per_stage;
    let mut stats = Stats::default();
    let mut docs = Vec::new();
    for (f, s) in files.iter().zip(&shard_stats) {
        stats.merge(s, k);
        docs.extend(read_shard(&shard_paths(out, f).0)?);
    }
    // Near-duplicate documents first (one copy stays), then lines repeated across the
    // remaining documents (boilerplate); the other order would erase both copies of a page.
    if let Some(m) = &cfg.dedup.minhash {
        let params = MinhashParams::new(m.num_hashes, m.num_bands, m.ngrams, m.threshold)?;
        let hasher = MinHasher::new(&params);
        let features: Vec<_> = docs.par_iter().map(|d| hasher.features(&d.text)).collect();
        let clusters = cluster_near_duplicates(&features, m.threshold);
        let before = docs.len() as u64;
        docs = docs
            .into_iter()
            .enumerate()
            .filter_map(|(i, d)| clusters.is_kept(i).then_some(d))
            .collect();
        let c = stats.stage_mut("dedup-minhash");
        c.seen += before;
        c.dropped += before - docs.len() as u64;
    }
    if cfg.dedup.exact_lines {
        let before = docs.len() as u64;
        docs = dedup_lines(docs, cfg.filters.min_chars);
        let c = stats.stage_mut("dedup-lines");
        c.seen += before;
        c.dropped += before - docs.len() as u64;
    }
    stats.kept = docs.len() as u64;
    stats.kept_chars = docs.iter().map(|d| d.text.chars().count() as u64).sum();

    let documents = write_documents(out, &docs, cfg.output.format)?;
    let (tokens, token_count) = match &cfg.tokenize {
        Some(t) => {
            let tokenizer = lm_basics::tokenizer::files::from_dir(&t.tokenizer)?;
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            let ids = crate::tokenize::tokenize_texts(&tokenizer, &texts)?;
            let path = out.join("tokens.bin");
            let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
            lm_core::fsutil::write_atomic(&path, &bytes)?;
            (Some(path), ids.len() as u64)
        }
        None => (None, 0),
    };
    let outputs = MergeOutputs {
        documents,
        tokens,
        token_count,
    };
    write_reports(out, &stats, &outputs)?;
    Ok((stats, outputs))
}

fn read_shard(path: &Path) -> Result<Vec<Document>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line.map_err(|e| DataError::io(path, e))?;
            serde_json::from_str(&line)
                .map_err(|e| DataError::bad_file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Removes every line that occurs more than once across `docs` (no copy is kept, as the
/// course's exact-line dedup); documents left shorter than `min_chars` are dropped.
pub fn dedup_lines(docs: Vec<Document>, min_chars: usize) -> Vec<Document> {
    let mut counts: FxHashMap<u64, u32> = FxHashMap::default();
    for d in &docs {
        for line in d.text.lines() {
            *counts.entry(xxh3_64(line.as_bytes())).or_default() += 1;
        }
    }
    docs.into_par_iter()
        .filter_map(|mut d| {
            let kept: Vec<&str> = d
                .text
                .lines()
                .filter(|l| counts[&xxh3_64(l.as_bytes())] == 1)
                .collect();
            d.text = kept.join("\n");
            (d.text.chars().count() >= min_chars.max(1)).then_some(d)
        })
        .collect()
}

fn write_reports(out: &Path, stats: &Stats, outputs: &MergeOutputs) -> Result<()> {
    let json = serde_json::json!({ "stats": stats, "outputs": outputs });
    let bytes =
        serde_json::to_vec_pretty(&json).map_err(|e| DataError::invalid("stats", e.to_string()))?;
    lm_core::fsutil::write_atomic(&out.join("stats.json"), &bytes)?;
    let mut summary = stats.summary();
    summary.push_str(&format!("documents: {}\n", outputs.documents.display()));
    if let Some(t) = &outputs.tokens {
        summary.push_str(&format!(
            "tokens: {} ({} tokens)\n",
            t.display(),
            outputs.token_count
        ));
    }
    lm_core::fsutil::write_atomic(&out.join("summary.txt"), summary.as_bytes())?;
    let mut examples = String::new();
    for e in &stats.examples {
        examples.push_str(&serde_json::to_string(e).unwrap_or_default());
        examples.push('\n');
    }
    lm_core::fsutil::write_atomic(&out.join("examples.jsonl"), examples.as_bytes())?;
    Ok(())
}
