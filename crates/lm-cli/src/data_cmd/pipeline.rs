//! `lm data run` and `lm data merge`: the whole pipeline from a `pipeline.toml`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lm_data::pipeline::{PipelineConfig, ShardSpec, merge, run};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Run the pipeline over WARC/WET files (see docs/lab4-data.md for pipeline.toml).
    Run(RunArgs),
    /// Merge finished shards (after `run --shard i/n` jobs): dedup and final outputs.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long)]
    config: PathBuf,
    /// Only every n-th input file starting at i (array jobs); then `lm data merge`.
    #[arg(long)]
    shard: Option<ShardSpec>,
}

#[derive(Args)]
pub struct MergeArgs {
    #[arg(long)]
    config: PathBuf,
}

pub fn run_cmd(cmd: PipelineCommand) -> Result<()> {
    match cmd {
        PipelineCommand::Run(a) => {
            let cfg = PipelineConfig::load(&a.config)?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed_precise}")
                    .expect("valid template"),
            );
            let report = run(&cfg, a.shard, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            if report.skipped > 0 {
                eprintln!(
                    "{} files were finished by an earlier run and skipped",
                    report.skipped
                );
            }
            match report.merged {
                Some((stats, outputs)) => {
                    print!("{}", stats.summary());
                    println!("documents: {}", outputs.documents.display());
                    if let Some(t) = outputs.tokens {
                        println!("tokens: {} ({} tokens)", t.display(), outputs.token_count);
                    }
                }
                None => {
                    print!("{}", report.stats.summary());
                    println!("shard done; run `lm data merge --config …` when every shard is");
                }
            }
        }
        PipelineCommand::Merge(a) => {
            let cfg = PipelineConfig::load(&a.config)?;
            let (stats, outputs) = merge(&cfg, &cfg.input_files()?)?;
            print!("{}", stats.summary());
            println!("documents: {}", outputs.documents.display());
        }
    }
    Ok(())
}
