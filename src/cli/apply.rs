//! `cairn apply`: every selected cluster through its stages, with a spinner each on a
//! terminal; with `--prune`, clusters that left the repository are deleted first.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::ExitStatus;
use super::args::{RepoArgs, TargetArgs, parse_duration};
use super::pivot::fault_hook;
use super::spinners::Spinners;
use cairn::errors::chain;
use cairn::lifecycle::fleet::{self, Outcome};
use cairn::lifecycle::removal::{self, MaxPrune};
use cairn::lifecycle::{ApplyOptions, ClusterReport};

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// Delete objects that left the repository (otherwise they are kept and reported).
    #[arg(long)]
    prune: bool,
    /// Most clusters one `--prune` may delete: a count, or a share of the fleet like 10%
    /// (at least one). More departed clusters than that look like a wrong --repo: then
    /// nothing is applied or deleted.
    #[arg(long, value_name = "N|P%", default_value_t = MaxPrune::default())]
    max_prune: MaxPrune,
    /// Longest wait for any one step, e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// How many clusters to apply at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Take over fields another manager owns instead of failing on the conflict.
    #[arg(long)]
    force_conflicts: bool,
    /// The revision recorded on each Cluster (`cairn.dev/revision`).
    #[arg(long, default_value = "working-tree")]
    revision: String,
}

pub async fn run(args: &ApplyArgs) -> Result<ExitStatus> {
    let Some(bundles) = args.repo.target_bundles(&args.target)? else {
        return Ok(ExitStatus::Failure);
    };
    let mut opts = ApplyOptions::new(args.prune, args.timeout, args.revision.clone());
    opts.after_pivot_step = fault_hook()?;
    let mgmt = Arc::new(args.target.kube.management(args.force_conflicts).await?);
    let spinners = std::io::stderr().is_terminal().then(Spinners::default);
    if let Some(spinners) = &spinners {
        opts.progress = spinners.progress();
    }
    let rendered: Vec<String> = bundles.iter().map(|b| b.cluster.clone()).collect();
    // Clusters that left the repository are looked for only when the whole repository is
    // applied: with --cluster, every unselected cluster would look departed.
    let departed = if args.prune && args.target.clusters.is_empty() {
        removal::departed(mgmt.as_ref(), &rendered).await?
    } else {
        Vec::new()
    };
    removal::check_prune(&departed, rendered.len(), args.max_prune)?;
    let concurrency = args.concurrency;
    let removed = fleet::remove_departed(mgmt.clone(), departed, opts.clone(), concurrency).await;
    let applied = fleet::apply_fleet(mgmt, bundles, opts, concurrency).await;
    if let Some(spinners) = spinners {
        spinners.finish();
    }
    let failed = report_removed(&removed) + report_applied(&applied);
    let applied = applied.iter().filter(|o| o.result.is_ok()).count();
    let deleted = removed.iter().filter(|o| o.result.is_ok()).count();
    eprintln!("{applied} cluster(s) applied, {deleted} deleted, {failed} failed");
    Ok(ExitStatus::failed_unless(failed == 0))
}

/// One line per departed cluster; the number that failed.
fn report_removed(removed: &[Outcome<()>]) -> usize {
    let mut failed = 0;
    for outcome in removed {
        match &outcome.result {
            Ok(()) => eprintln!(
                "cluster {}: deleted (it left the repository)",
                outcome.cluster
            ),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "cluster {}: FAILED to delete: {}",
                    outcome.cluster,
                    chain(e)
                );
            }
        }
    }
    failed
}

/// One line per applied cluster, with the objects kept that left the repository; the number
/// that failed.
fn report_applied(applied: &[Outcome<ClusterReport>]) -> usize {
    let mut failed = 0;
    for outcome in applied {
        match &outcome.result {
            Ok(report) => {
                eprintln!(
                    "cluster {}: Ready ({} written)",
                    outcome.cluster,
                    report.written()
                );
                let orphans: Vec<String> = report
                    .stages
                    .iter()
                    .flat_map(|(_, r)| r.orphaned.clone())
                    .collect();
                if !orphans.is_empty() {
                    eprintln!(
                        "  kept objects that left the repository (use --prune to delete): {}",
                        orphans.join(", ")
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("cluster {}: FAILED: {}", outcome.cluster, chain(e));
            }
        }
    }
    failed
}
