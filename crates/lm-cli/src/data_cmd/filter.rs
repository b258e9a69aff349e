//! (issue 8; being written)

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum FilterCommand {
    /// Placeholder until these commands exist.
    #[command(hide = true)]
    FilterTodo,
}

pub fn run(cmd: FilterCommand) -> Result<()> {
    match cmd {
        FilterCommand::FilterTodo => anyhow::bail!("not implemented yet"),
    }
}
