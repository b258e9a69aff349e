//! `lm data …`: lab 4 — each library function of `lm-data` as a subcommand (text in on stdin
//! or a file, JSON or text out), so it can be used and tested from outside Rust.

mod classify;
mod filter;
mod pipeline;
mod text;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DataCommand {
    /// WARC/WET reading and HTML → text.
    #[command(flatten)]
    Text(text::TextCommand),
    /// Language ID and fastText-format classifiers (use, train).
    #[command(flatten)]
    Classify(classify::ClassifyCommand),
    /// PII masking, Gopher rules, deduplication, tokenization.
    #[command(flatten)]
    Filter(filter::FilterCommand),
    /// The whole pipeline: run (optionally one shard), merge.
    #[command(flatten)]
    Pipeline(pipeline::PipelineCommand),
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Text(c) => text::run(c),
        DataCommand::Classify(c) => classify::run(c),
        DataCommand::Filter(c) => filter::run(c),
        DataCommand::Pipeline(c) => pipeline::run_cmd(c),
    }
}
