//! The command line: the command tree, one file per command (its clap `Args` and a `run` that
//! returns an [`ExitStatus`]), one async runtime, and the exit codes. The only place that ends
//! the process.

mod agent;
mod apply;
mod args;
mod completion;
pub mod demo;
mod diff;
mod init;
mod local;
mod pivot;
mod preview;
mod render;
mod run;
mod schema;
mod spinners;
mod status;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// How a command ended; the process exits with its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done, nothing to report.
    Success,
    /// 1: the command worked and its answer is "yes, something is there": `diff` found
    /// differences, `preview`'s head revision does not validate (as `kubectl diff` uses 1).
    Differences,
    /// 2: invalid input or a failed operation, already reported on stderr.
    Failure,
    /// 86: `CAIRN_FAULT_AFTER` stopped the process after a pivot step (a testing aid).
    Fault,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Differences => 1,
            ExitStatus::Failure => 2,
            ExitStatus::Fault => 86,
        }
    }

    /// `Success` when `ok`, else `Failure`.
    fn failed_unless(ok: bool) -> ExitStatus {
        if ok {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "GitOps reconciler for Cluster API fleets",
    long_about = "cairn renders, for every cluster in a config repository, the Cluster API objects \
                  and the manifests of its pivot, diffs them against the live clusters and applies \
                  them in dependency order.\n\n\
                  Exit codes: 0 success, 1 differences found (diff), 2 invalid input or failure."
)]
pub struct Cli {
    /// Log filter, e.g. `info` or `cairn=debug` (logs go to stderr).
    #[arg(
        long,
        global = true,
        env = "CAIRN_LOG",
        default_value = "warn,cairn=info"
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a config repository and report every problem at once, as `file:line:col: error: ...`.
    ///
    /// Exit code 0 when valid (warnings allowed), 2 when there is any error. Writes nothing.
    Validate(validate::ValidateArgs),
    /// Render each cluster's bundle: 01-bootstrap, 02-pivot, 03-workload, 04-addons.
    ///
    /// Writes OUT/<cluster>/NN-<stage>.yaml, or one multi-document stream to stdout with
    /// `--out -`. Nothing is written unless the whole repository is valid.
    Render(render::RenderArgs),
    /// Show what `apply` would change, per cluster and stage, as unified YAML diffs.
    ///
    /// Every object is dry-run with server-side apply and compared with the live object after
    /// dropping status and server-managed fields. Secret values are never shown. Exit code 0
    /// when nothing differs, 1 when something does, 2 on error (as `kubectl diff`).
    Diff(diff::DiffArgs),
    /// Apply the bundles stage by stage, waiting on CAPI's signals and on health between stages.
    ///
    /// Bootstrap, then (once the control plane is initialized) the workload stage, then (once the
    /// machines have rolled out) the add-ons layer by layer. Objects that have not drifted are not
    /// written. Exit code 2 if any cluster failed; the others carry on.
    Apply(apply::ApplyArgs),
    /// Move one cluster's CAPI objects into its own workload cluster (or back with --reverse).
    ///
    /// clusterctl move's semantics: provider CRDs installed in the target, source checked as
    /// provisioned, a copy of the workload kubeconfig kept in cairn-system, the source paused,
    /// objects created group by group (owners first) with owner uids rewritten, deleted from the
    /// source in reverse order, the target unpaused. Each step is journaled on the Cluster
    /// (annotation cairn.dev/pivot): a run killed anywhere is finished by the next one.
    ///
    /// Testing aid: CAIRN_FAULT_AFTER=<step> exits the process (code 86, no cleanup) right after
    /// that step. The steps, in order, are listed below the options.
    #[command(after_long_help = pivot::steps_help())]
    Pivot(pivot::PivotArgs),
    /// What a change between two revisions does to the fleet, for a pull-request comment.
    ///
    /// Renders both revisions straight from git objects (no checkout) and reports a summary, what
    /// the change means for machines (control planes and pools replaced or scaled, clusters
    /// created or deleted, add-ons by layer), warnings a reviewer must not miss (skipped minor
    /// version, downgrade, even control plane, protected cluster removed, a large share of the
    /// fleet at once) and per-object diffs with Secret values redacted. Markdown fits one GitHub
    /// comment; `--format json` is stable (see the README). Exit code 0, or 1 when the head
    /// revision does not validate (the preview says why), 2 on error.
    Preview(preview::PreviewArgs),
    /// One row per cluster: provider, phase, revision, where its CAPI objects live, machines
    /// ready/desired, creation time and last error.
    ///
    /// Pivoted clusters are read through the kubeconfig kept in cairn-system, with their agent's
    /// own record (phase, revision, last error). Exit code 2 when a cluster is unreachable.
    Status(status::StatusArgs),
    /// Run the controller: keep every cluster of a git repository converged.
    ///
    /// Fetches the branch every --poll-interval (±10%), or at once on a signed push webhook
    /// (POST /webhook/github with X-Hub-Signature-256, POST /webhook/gitlab with X-Gitlab-Token;
    /// anything unsigned or forged gets 401). Reconciles the clusters whose rendered bundle
    /// changed, and every cluster again each --reconcile-interval to repair drift; a failing
    /// cluster backs off exponentially on its own. A revision that does not render, or a source
    /// that cannot be reached, keeps the last good revision. Serves the webhooks, /healthz and
    /// /readyz (once a revision is fetched and rendered) on --listen, and /metrics (Prometheus),
    /// /status (JSON), /healthz and /readyz on --status-listen. With --leader-elect only the
    /// holder of a Lease reconciles. SIGTERM lets clusters being reconciled finish
    /// (--shutdown-grace), releases the Lease and exits 0.
    Run(Box<run::RunArgs>),
    /// Run the agent of one pivoted cluster: converge it from git, in its own API server.
    ///
    /// Fetches the source, renders this cluster, applies its bootstrap (hand-over), workload and
    /// add-ons stages to its own API server once its CAPI objects are there and unpaused, and
    /// records phase, revision, last error and last sync in the status of PivotPlan
    /// cairn-system/<cluster>. When the source is unreachable it keeps the last good revision
    /// and reports the source as stale. It never needs the management cluster.
    Agent(agent::AgentArgs),
    /// The whole product on this machine in a few minutes, then everything stopped.
    ///
    /// Starts a local environment (as `cairn local up`), commits the example fleet to a git
    /// repository in a temporary directory and runs the controller on it until every cluster
    /// is Ready (two of the three through the pivot), with progress on stderr. Then commits one
    /// change (worker pool md-0 of dev-docker-1 scaled from 2 to 3), carries it through,
    /// prints the status table (as `cairn status`) on stdout and a summary on stderr, and
    /// stops everything, also on error, Ctrl-C or SIGTERM (unless --keep). Needs Go the first
    /// time, to build kube-apiserver and etcd (or set KUBEBUILDER_ASSETS). Exit code 0, or 2
    /// on failure.
    Demo(demo::DemoArgs),
    /// A local environment: real API servers and a Cluster API provider simulator.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Write the JSON Schemas of Fleet, Cluster and ClusterProfile (for editors).
    Schema(schema::SchemaArgs),
    /// Write a small valid fleet repository to start from: fleet.yaml, one Docker cluster, one
    /// profile with one layer, and the JSON Schemas its modelines point at.
    ///
    /// Refuses a directory that already holds fleet.yaml or clusters/.
    Init(init::InitArgs),
    /// Print a shell completion script, e.g. `source <(cairn completion bash)`.
    Completion(completion::CompletionArgs),
}

/// Runs one command on one async runtime.
pub fn run(command: Command) -> Result<ExitStatus> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Validate(args) => validate::run(&args),
            Command::Render(args) => render::run(&args),
            Command::Diff(args) => diff::run(&args).await,
            Command::Apply(args) => apply::run(&args).await,
            Command::Pivot(args) => pivot::run(&args).await,
            Command::Preview(args) => preview::run(&args).await,
            Command::Status(args) => status::run(&args).await,
            Command::Run(args) => run::run(*args).await,
            Command::Agent(args) => agent::run(&args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Local(command) => local::run(command).await,
            Command::Schema(args) => schema::run(&args),
            Command::Init(args) => init::run(&args),
            Command::Completion(args) => completion::run(&args),
        }
    })
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn init_logging(filter: &str) {
    // kube's client builder logs every failed request at ERROR, including the expected
    // refusals while an API server starts; cairn reports failures itself, with context.
    let quiet = format!("{filter},kube_client::client::builder=off");
    let filter = tracing_subscriber::EnvFilter::try_new(&quiet)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(demo::log_writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
