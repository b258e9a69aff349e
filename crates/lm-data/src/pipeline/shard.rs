//! One input file → its shard: the kept documents (`shards/<name>.jsonl`) and its counters
//! (`shards/<name>.stats.json`, written last: a shard with stats is finished and is skipped
//! when the pipeline is run again).

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use lm_core::fsutil::AtomicFile;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::warc::WarcReader;

use super::document::document_of;
use super::filters::Filters;
use super::stats::{Example, Stats};

/// The shard files of `input` under `out_dir/shards/`: a readable name plus a hash of the
/// full path (two inputs with the same file name do not collide).
pub fn shard_paths(out_dir: &Path, input: &Path) -> (PathBuf, PathBuf) {
    let mut h = rustc_hash::FxHasher::default();
    h.write(input.to_string_lossy().as_bytes());
    let stem: String = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("{stem}-{:08x}", h.finish() as u32);
    let dir = out_dir.join("shards");
    (
        dir.join(format!("{name}.jsonl")),
        dir.join(format!("{name}.stats.json")),
    )
}

/// The stats of a finished shard, if there is one.
pub fn finished(out_dir: &Path, input: &Path) -> Option<Stats> {
    let (_, stats) = shard_paths(out_dir, input);
    let text = std::fs::read_to_string(stats).ok()?;
    serde_json::from_str(&text).ok()
}

/// Reads every record of `input`, runs the stages on each document, writes the kept ones.
pub fn process_file(
    input: &Path,
    filters: &Filters,
    stage_names: &[String],
    out_dir: &Path,
    examples_per_stage: usize,
) -> Result<Stats> {
    let (docs_path, stats_path) = shard_paths(out_dir, input);
    let dir = docs_path.parent().expect("shard paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let source = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stats = Stats::with_stages(stage_names);
    stats.files = 1;
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    let mut out = AtomicFile::create(&docs_path)?;
    let io = |e| DataError::io(&docs_path, e);
    for record in WarcReader::open(input)? {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                stats.record_error(format!("{} {e}", input.display()));
                continue;
            }
        };
        stats.records += 1;
        let Some(mut doc) = document_of(&record, &source) else {
            continue;
        };
        stats.documents += 1;
        let verdict = filters.apply(&mut doc);
        // Every stage before the one that dropped it saw the document.
        let reached = match &verdict {
            Ok(()) => stage_names.len(),
            Err(d) => stage_names
                .iter()
                .position(|n| *n == d.stage)
                .map_or(0, |i| i + 1),
        };
        for name in &stage_names[..reached] {
            stats.stage_mut(name).seen += 1;
        }
        match verdict {
            Ok(()) => {
                stats.kept += 1;
                stats.kept_chars += doc.text.chars().count() as u64;
                stats.pii_masked += doc.pii_masked as u64;
                serde_json::to_writer(&mut out, &doc).map_err(|e| io(e.into()))?;
                out.write_all(b"\n").map_err(io)?;
            }
            Err(d) => {
                stats.stage_mut(&d.stage).dropped += 1;
                let example = Example {
                    stage: d.stage,
                    reason: d.reason,
                    url: doc.url,
                    text: doc.text.chars().take(500).collect(),
                };
                stats.offer_example(example, examples_per_stage, &mut rng);
            }
        }
    }
    out.commit()?;
    let json = serde_json::to_vec_pretty(&stats)
        .map_err(|e| DataError::invalid("shard stats", e.to_string()))?;
    lm_core::fsutil::write_atomic(&stats_path, &json)?;
    Ok(stats)
}
