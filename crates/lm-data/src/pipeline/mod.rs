//! `lm data run`: the whole pipeline over a directory of WARC/WET files — per file (in
//! parallel, rayon): records → documents → stages (length, language, Gopher, classifiers) →
//! PII masking → a shard; then, over all shards, MinHash and exact-line deduplication and
//! the outputs. Finished shards are skipped on restart; `--shard i/n` runs every n-th file
//! so array jobs can split the work, and `lm data merge` finishes it.

pub mod config;
pub mod document;
pub mod filters;
pub mod merge;
pub mod output;
pub mod shard;
pub mod stats;

use std::path::PathBuf;

use rayon::prelude::*;

pub use config::PipelineConfig;
pub use merge::{MergeOutputs, merge};
pub use stats::Stats;

use crate::error::{DataError, Result};
use filters::{Filters, stage_names};

/// Which part of the input files this process handles: file `j` belongs to shard `j % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = DataError;

    /// `i/n`, e.g. `0/4` (Slurm: `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || DataError::invalid("--shard", format!("`{s}`: expected i/n with i < n"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// What one `run` did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub files: Vec<PathBuf>,
    /// Files finished by an earlier run and skipped.
    pub skipped: usize,
    /// This process's files' stats (fresh and skipped).
    pub stats: Stats,
    /// Present when this run also merged (no `--shard`, or shard 0/1).
    pub merged: Option<(Stats, MergeOutputs)>,
}

/// Runs the stages over this shard's files, then merges when the run covers every file.
/// `progress` is called after each file with (files done, files total).
pub fn run(
    cfg: &PipelineConfig,
    shard: Option<ShardSpec>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunReport> {
    let all = cfg.input_files()?;
    let spec = shard.unwrap_or(ShardSpec { index: 0, count: 1 });
    let mine: Vec<PathBuf> = all
        .iter()
        .enumerate()
        .filter(|(j, _)| j % spec.count == spec.index)
        .map(|(_, f)| f.clone())
        .collect();
    let out = &cfg.output.dir;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let config_toml =
        toml::to_string_pretty(cfg).map_err(|e| DataError::invalid("config", e.to_string()))?;
    lm_core::fsutil::write_atomic(&out.join("pipeline.toml"), config_toml.as_bytes())?;

    let names = stage_names(&cfg.filters);
    let k = cfg.output.examples_per_stage;
    // Each file's stats: from an earlier run (the shard is finished), else made now.
    let mut shard_stats: Vec<Option<Stats>> =
        mine.iter().map(|f| shard::finished(out, f)).collect();
    let todo: Vec<usize> = (0..mine.len())
        .filter(|&i| shard_stats[i].is_none())
        .collect();
    let skipped = mine.len() - todo.len();
    let filters = if todo.is_empty() {
        None
    } else {
        Some(Filters::load(&cfg.filters)?)
    };
    let done = std::sync::atomic::AtomicUsize::new(skipped);
    let fresh = todo
        .par_iter()
        .map(|&i| {
            let filters = filters.as_ref().expect("loaded when there is work");
            let s = shard::process_file(&mine[i], filters, &names, out, k);
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                mine.len(),
            );
            s.map(|s| (i, s))
        })
        .collect::<Result<Vec<_>>>()?;
    for (i, s) in fresh {
        shard_stats[i] = Some(s);
    }
    let shard_stats: Vec<Stats> = shard_stats.into_iter().flatten().collect();
    let mut stats = Stats::with_stages(&names);
    for s in &shard_stats {
        stats.merge(s, k);
    }
    // A run over every file merges what it has in hand (`mine` is then `all`).
    let merged = if spec.count == 1 {
        Some(merge::merge_shards(cfg, &all, shard_stats)?)
    } else {
        None
    };
    Ok(RunReport {
        files: mine,
        skipped,
        stats,
        merged,
    })
}
