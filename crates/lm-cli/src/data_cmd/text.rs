//! (issue 8; being written)

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TextCommand {
    /// Placeholder until these commands exist.
    #[command(hide = true)]
    TextTodo,
}

pub fn run(cmd: TextCommand) -> Result<()> {
    match cmd {
        TextCommand::TextTodo => anyhow::bail!("not implemented yet"),
    }
}
