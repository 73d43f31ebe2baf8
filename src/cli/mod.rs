//! `cairn pivot`, `cairn agent` and `cairn preview`: thin wrappers over `pivot::mover`,
//! `agent` and `preview`.

pub mod demo;
pub mod init;
pub mod preview;
pub mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::parse_duration;

use cairn::apply::api::KubeClusterApi;
use cairn::apply::progress::log_lines;
use cairn::lifecycle::workload::reach_workload;
use cairn::pivot::discover::discover;
use cairn::pivot::mover::{MoveOptions, Mover};
use cairn::pivot::steps::{AfterStep, Direction, Step};

/// Environment variable naming a pivot step after which the process exits at once, with no
/// cleanup, as a crash would (a testing aid: a rerun must converge from there).
pub const FAULT_ENV: &str = "CAIRN_FAULT_AFTER";
/// Exit code of an injected fault.
pub const FAULT_EXIT_CODE: i32 = 86;

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
            unsafe { libc::_exit(FAULT_EXIT_CODE) };
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

pub struct PivotArgs {
    pub cluster: String,
    pub reverse: bool,
    pub dry_run: bool,
    pub json: bool,
    pub timeout: Duration,
}

/// Moves one cluster's CAPI objects (or prints the plan with `dry_run`).
pub async fn pivot(mgmt: KubeClusterApi, args: PivotArgs) -> Result<()> {
    let workload = reach_workload(&mgmt, &args.cluster)
        .await?
        .with_context(|| {
            format!(
                "cannot reach the workload cluster of {0}: neither cairn-system/{0}-kubeconfig nor {0}/{0}-kubeconfig exists in the management cluster",
                args.cluster
            )
        })?;
    let (source, target, direction) = if args.reverse {
        (&workload, &mgmt, Direction::Reverse)
    } else {
        (&mgmt, &workload, Direction::Forward)
    };
    if args.dry_run {
        return print_plan(source, &args).await;
    }
    let mover = Mover {
        source,
        target,
        direction,
        cluster: &args.cluster,
        opts: MoveOptions {
            timeout: args.timeout,
            progress: log_lines(),
            after_step: fault_hook()?,
        },
    };
    let report = mover.run().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.already_moved {
        eprintln!(
            "cluster {}: its CAPI objects already are in the target; nothing to do",
            args.cluster
        );
    } else {
        eprintln!(
            "cluster {}: moved {} objects in {} groups ({} deleted from the source) in {:.1}s{}",
            args.cluster,
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

async fn print_plan(source: &KubeClusterApi, args: &PivotArgs) -> Result<()> {
    let discovered = discover(source, &args.cluster)
        .await?
        .with_context(|| format!("Cluster {0}/{0} is not in the source cluster", args.cluster))?;
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
    if args.json {
        let plan = serde_json::json!({
            "cluster": args.cluster,
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
        args.cluster,
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

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The cluster this agent runs in (its name in the repository).
    #[arg(long)]
    pub cluster: String,
    /// Kubeconfig of the workload cluster (default: the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The agent config (default: ConfigMap cairn-system/cairn-agent-config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides the config's git URL.
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
    /// Overrides the config's branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Pause between passes, e.g. 30s, 1m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Where the git mirror is kept (default: a directory under $TMPDIR).
    #[arg(long, value_name = "DIR", env = "CAIRN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Longest wait for any one step of a pass.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Delete objects that left the repository.
    #[arg(long)]
    pub prune: bool,
    /// One pass, its record printed as JSON; exit code 2 if it recorded an error.
    #[arg(long)]
    pub once: bool,
}

/// A client from `kubeconfig`, else from $KUBECONFIG, ~/.kube/config or the in-cluster
/// service account, in that order.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client> {
    match kubeconfig {
        Some(path) => {
            let yaml = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            cairn::kube_client::client_from_kubeconfig(&yaml)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))
        }
        None => kube::Client::try_default()
            .await
            .context("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run inside a cluster"),
    }
}

/// The agent loop until SIGTERM or Ctrl-C.
pub async fn agent(args: AgentArgs) -> Result<u8> {
    let client = client(args.kubeconfig.as_deref()).await?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-agent-{}", args.cluster)));
    let opts = cairn::agent::AgentOptions {
        cluster: args.cluster.clone(),
        config_file: args.config.clone(),
        source_url: args.source_url.clone(),
        branch: args.branch.clone(),
        poll_interval: args.poll_interval,
        state_dir,
        timeout: args.timeout,
        prune: args.prune,
    };
    let mut agent = cairn::agent::Agent::new(KubeClusterApi::new(client, false), opts);
    if args.once {
        let status = agent.pass().await;
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(if status.last_error.is_some() { 2 } else { 0 });
    }
    agent.run(shutdown_signal()).await;
    Ok(0)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
