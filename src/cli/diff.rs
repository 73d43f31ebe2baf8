//! `cairn diff`: what `apply` would change, as unified YAML diffs or JSON.

use std::sync::Arc;

use anyhow::Result;

use super::ExitStatus;
use super::args::{OutputFormat, RepoArgs, TargetArgs};

#[derive(clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// Also plan the deletion of objects that left the repository.
    #[arg(long)]
    prune: bool,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// How many clusters are diffed at once.
const CONCURRENCY: usize = 4;

pub async fn run(args: &DiffArgs) -> Result<ExitStatus> {
    let Some(bundles) = args.repo.target_bundles(&args.target)? else {
        return Ok(ExitStatus::Failure);
    };
    let mgmt = Arc::new(args.target.kube.management(false).await?);
    let outcomes = cairn::lifecycle::diff::diff_fleet(mgmt, bundles, args.prune, CONCURRENCY).await;
    let mut plans = Vec::new();
    let mut failed = false;
    for outcome in outcomes {
        match outcome.result {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: cluster {}: {}",
                    outcome.cluster,
                    cairn::errors::chain(&e)
                );
            }
        }
    }
    match args.output {
        OutputFormat::Text if plans.is_empty() => {}
        OutputFormat::Text => print!("{}", cairn::diff::text::render_text(&plans)),
        OutputFormat::Json => println!("{}", cairn::diff::text::render_json(&plans)),
    }
    Ok(if failed {
        ExitStatus::Failure
    } else if plans.iter().any(|p| p.has_changes()) {
        ExitStatus::Differences
    } else {
        ExitStatus::Success
    })
}
