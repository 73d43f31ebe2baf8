//! `cairn validate`: every problem of a repository at once, nothing written.

use anyhow::Result;

use super::ExitStatus;
use super::args::{OutputFormat, RepoArgs, print_diagnostics};
use cairn::model::Diagnostic;
use cairn::render;

#[derive(clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// `text` for people, `json` for machines (printed on stdout).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub fn run(args: &ValidateArgs) -> Result<ExitStatus> {
    let snap = args.repo.snapshot()?;
    let diagnostics = render::render_repo_with(&snap, &[], |_| Ok(()));
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    match args.output {
        OutputFormat::Text => {
            print_diagnostics(&diagnostics);
            if ok {
                eprintln!("{}: valid", args.repo.label().display());
            }
        }
        OutputFormat::Json => {
            let report = serde_json::json!({"valid": ok, "diagnostics": diagnostics});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(ExitStatus::failed_unless(ok))
}
