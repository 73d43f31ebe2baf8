//! `cairn completion SHELL`: clap's completion script for the whole command tree.

use anyhow::Result;

use super::{Cli, ExitStatus};

#[derive(clap::Args)]
pub struct CompletionArgs {
    shell: clap_complete::Shell,
}

pub fn run(args: &CompletionArgs) -> Result<ExitStatus> {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut command, "cairn", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}
