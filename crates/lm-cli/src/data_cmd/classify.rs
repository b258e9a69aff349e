//! (issue 8; being written)

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ClassifyCommand {
    /// Placeholder until these commands exist.
    #[command(hide = true)]
    ClassifyTodo,
}

pub fn run(cmd: ClassifyCommand) -> Result<()> {
    match cmd {
        ClassifyCommand::ClassifyTodo => anyhow::bail!("not implemented yet"),
    }
}
