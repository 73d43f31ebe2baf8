//! `cairn pivot`: one cluster's move (`pivot::mover`), its dry-run plan and its step list,
//! and the `CAIRN_FAULT_AFTER` testing aid, installed here at the process edge.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::ExitStatus;
use super::args::{KubeArgs, OutputFormat, parse_duration};
use cairn::apply::api::KubeClusterApi;
use cairn::apply::progress::log_lines;
use cairn::lifecycle::workload::reach_workload;
use cairn::pivot::discover::discover;
use cairn::pivot::mover::{MoveOptions, Mover};
use cairn::pivot::steps::{AfterStep, Direction, Step};

/// Environment variable naming a pivot step after which the process exits at once, with no
/// cleanup, as a crash would (a testing aid: a rerun must converge from there).
const FAULT_ENV: &str = "CAIRN_FAULT_AFTER";

/// The hook `CAIRN_FAULT_AFTER` asks for, checked: an unknown step name is an error, not
/// silently ignored.
pub fn fault_hook() -> Result<Option<AfterStep>> {
    let Ok(value) = std::env::var(FAULT_ENV) else {
        return Ok(None);
    };
    let Some(fault) = Step::parse(&value) else {
        bail!("{FAULT_ENV}={value} names no pivot step; `cairn pivot --list-steps` lists them")
    };
    Ok(Some(std::sync::Arc::new(move |step| {
        if step == fault {
            tracing::warn!("{FAULT_ENV}={}: exiting now", step.name());
            // SAFETY: _exit ends the process at once, on purpose without any cleanup: the
            // testing aid stands for a crash.
            unsafe { libc::_exit(ExitStatus::Fault.code().into()) };
        }
    })))
}

/// The step names, one a line.
pub fn list_steps() -> String {
    Step::ALL
        .iter()
        .map(|s| format!("{}\n", s.name()))
        .collect()
}

/// The step names with what each leaves done, for `--help`.
pub fn steps_help() -> String {
    Step::ALL
        .iter()
        .map(|s| format!("  {:<20} {}", s.name(), s.describe()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(clap::Args)]
pub struct PivotArgs {
    /// The cluster to move (its CAPI objects live in the namespace of that name).
    #[arg(required_unless_present = "list_steps")]
    cluster: Option<String>,
    #[command(flatten)]
    kube: KubeArgs,
    /// Move from the workload cluster back into the management cluster.
    #[arg(long)]
    reverse: bool,
    /// Print the move plan (objects by group) without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the step names, one a line, and exit.
    #[arg(long)]
    list_steps: bool,
    /// Longest wait for CRDs to be established and for block-move to clear.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub async fn run(args: &PivotArgs) -> Result<ExitStatus> {
    if args.list_steps {
        print!("{}", list_steps());
        return Ok(ExitStatus::Success);
    }
    let cluster = args
        .cluster
        .as_deref()
        .context("name the cluster to pivot")?;
    pivot(args.kube.management(false).await?, cluster, args).await?;
    Ok(ExitStatus::Success)
}

/// Moves one cluster's CAPI objects (or prints the plan with `dry_run`).
async fn pivot(mgmt: KubeClusterApi, cluster: &str, args: &PivotArgs) -> Result<()> {
    let workload = reach_workload(&mgmt, cluster)
        .await?
        .with_context(|| {
            format!(
                "cannot reach the workload cluster of {0}: neither cairn-system/{0}-kubeconfig nor {0}/{0}-kubeconfig exists in the management cluster",
                cluster
            )
        })?;
    let (source, target, direction) = if args.reverse {
        (&workload, &mgmt, Direction::Reverse)
    } else {
        (&mgmt, &workload, Direction::Forward)
    };
    if args.dry_run {
        return print_plan(source, cluster, args).await;
    }
    let mover = Mover {
        source,
        target,
        direction,
        cluster,
        opts: MoveOptions {
            timeout: args.timeout,
            progress: log_lines(),
            after_step: fault_hook()?,
        },
    };
    let report = mover.run().await?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.already_moved {
        eprintln!(
            "cluster {}: its CAPI objects already are in the target; nothing to do",
            cluster
        );
    } else {
        eprintln!(
            "cluster {}: moved {} objects in {} groups ({} deleted from the source) in {:.1}s{}",
            cluster,
            report.created,
            report.groups,
            report.deleted,
            report.seconds,
            report
                .resumed_after
                .as_ref()
                .map(|s| format!(", resuming after step {s}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn print_plan(source: &KubeClusterApi, cluster: &str, args: &PivotArgs) -> Result<()> {
    let discovered = discover(source, cluster)
        .await?
        .with_context(|| format!("Cluster {0}/{0} is not in the source cluster", cluster))?;
    let groups: Vec<Vec<String>> = discovered
        .sequence
        .groups
        .iter()
        .map(|g| g.iter().map(ToString::to_string).collect())
        .collect();
    let unplaceable: Vec<String> = discovered
        .sequence
        .unplaceable
        .iter()
        .map(|(k, why)| format!("{k}: {why}"))
        .collect();
    if args.output == OutputFormat::Json {
        let plan = serde_json::json!({
            "cluster": cluster,
            "direction": if args.reverse { "reverse" } else { "forward" },
            "objects": discovered.count(),
            "groups": groups,
            "unplaceable": unplaceable,
        });
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    println!(
        "move plan for cluster {} ({}): {} objects in {} groups",
        cluster,
        if args.reverse {
            "workload -> management"
        } else {
            "management -> workload"
        },
        discovered.count(),
        groups.len()
    );
    for (i, group) in groups.iter().enumerate() {
        println!("group {}:", i + 1);
        for object in group {
            println!("  {object}");
        }
    }
    for line in &unplaceable {
        println!("cannot be placed: {line}");
    }
    Ok(())
}
