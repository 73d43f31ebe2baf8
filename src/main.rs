//! The `cairn` binary: parse the command line, start logging, run one command, exit with its
//! status. Each command lives in `cli/<command>.rs`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args.log);
    match cli::run(args.command) {
        Ok(status) => status.into(),
        // A closed pipe (`cairn render --out - | head`) is the reader's choice, not a failure.
        Err(e) if cli::is_broken_pipe(&e) => cli::ExitStatus::Success.into(),
        Err(e) => {
            eprintln!("error: {}", cairn::errors::chain_anyhow(&e));
            cli::ExitStatus::Failure.into()
        }
    }
}
