//! The `cairn` command line: parsing, logging and exit codes. The only place that exits.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use cairn::apply::api::KubeClusterApi;
use cairn::lifecycle::ApplyOptions;
use cairn::lifecycle::fleet;
use cairn::model::{Diagnostic, RepoSnapshot};
use cairn::render::{self, output};

mod cli;

/// Exit code when everything is fine.
const EXIT_OK: u8 = 0;
/// Exit code of `diff` when something differs.
const EXIT_DIFFERENT: u8 = 1;
/// Exit code for invalid input or a failed operation (as `kubectl diff` uses 2).
const EXIT_ERROR: u8 = 2;

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
struct Cli {
    /// Log filter, e.g. `info` or `cairn=debug` (logs go to stderr).
    #[arg(
        long,
        global = true,
        env = "CAIRN_LOG",
        default_value = "warn,cairn=info"
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config repository and report every problem at once, as `file:line:col: error: ...`.
    ///
    /// Exit code 0 when valid (warnings allowed), 2 when there is any error. Writes nothing.
    Validate {
        #[command(flatten)]
        repo: RepoArgs,
        /// `text` for people, `json` for machines (printed on stdout).
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Render each cluster's bundle: 01-bootstrap, 02-pivot, 03-workload, 04-addons.
    ///
    /// Writes OUT/<cluster>/NN-<stage>.yaml, or one multi-document stream to stdout with
    /// `--out -`. Nothing is written unless the whole repository is valid.
    Render {
        #[command(flatten)]
        repo: RepoArgs,
        /// Render only these clusters (repeatable); all by default.
        #[arg(long = "cluster", value_name = "NAME")]
        clusters: Vec<String>,
        /// Output directory, or `-` for stdout.
        #[arg(long)]
        out: String,
    },
    /// Show what `apply` would change, per cluster and stage, as unified YAML diffs.
    ///
    /// Every object is dry-run with server-side apply and compared with the live object after
    /// dropping status and server-managed fields. Secret values are never shown. Exit code 0
    /// when nothing differs, 1 when something does, 2 on error (as `kubectl diff`).
    Diff {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Also plan the deletion of objects that left the repository.
        #[arg(long)]
        prune: bool,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Apply the bundles stage by stage, waiting on CAPI's signals and on health between stages.
    ///
    /// Bootstrap, then (once the control plane is initialized) the workload stage, then (once the
    /// machines have rolled out) the add-ons layer by layer. Objects that have not drifted are not
    /// written. Exit code 2 if any cluster failed; the others carry on.
    Apply {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Delete objects that left the repository (otherwise they are kept and reported).
        #[arg(long)]
        prune: bool,
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
    },
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
    #[command(after_long_help = cli::steps_help())]
    Pivot {
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
    },
    /// What a change between two revisions does to the fleet, for a pull-request comment.
    ///
    /// Renders both revisions straight from git objects (no checkout) and reports a summary, what
    /// the change means for machines (control planes and pools replaced or scaled, clusters
    /// created or deleted, add-ons by layer), warnings a reviewer must not miss (skipped minor
    /// version, downgrade, even control plane, protected cluster removed, a large share of the
    /// fleet at once) and per-object diffs with Secret values redacted. Markdown fits one GitHub
    /// comment; `--format json` is stable (see the README). Exit code 0, or 1 when the head
    /// revision does not validate (the preview says why), 2 on error.
    Preview(cli::preview::PreviewArgs),
    /// One row per cluster: provider, phase, revision, where its CAPI objects live, machines
    /// ready/desired, creation time and last error.
    ///
    /// Pivoted clusters are read through the kubeconfig kept in cairn-system, with their agent's
    /// own record (phase, revision, last error). Exit code 2 when a cluster is unreachable.
    Status {
        #[command(flatten)]
        kube: KubeArgs,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Run the controller: keep every cluster of a git repository converged.
    ///
    /// Fetches the branch every --poll-interval (±10%), or at once on a signed push webhook
    /// (POST /webhook/github with X-Hub-Signature-256, POST /webhook/gitlab with X-Gitlab-Token;
    /// anything unsigned or forged gets 401). Reconciles the clusters whose rendered bundle
    /// changed, and every cluster again each --reconcile-interval to repair drift; a failing
    /// cluster backs off exponentially on its own. A revision that does not render, or a source
    /// that cannot be reached, keeps the last good revision. Serves /healthz, /readyz (once a
    /// revision is fetched and rendered), /metrics (Prometheus) and /status (JSON). With
    /// --leader-elect only the holder of a Lease reconciles. SIGTERM lets clusters being
    /// reconciled finish (--shutdown-grace), releases the Lease and exits 0.
    Run(Box<cli::run::RunArgs>),
    /// Run the agent of one pivoted cluster: converge it from git, in its own API server.
    ///
    /// Fetches the source, renders this cluster, applies its bootstrap (hand-over), workload and
    /// add-ons stages to its own API server once its CAPI objects are there and unpaused, and
    /// records phase, revision, last error and last sync in the status of PivotPlan
    /// cairn-system/<cluster>. When the source is unreachable it keeps the last good revision
    /// and reports the source as stale. It never needs the management cluster.
    Agent(cli::AgentArgs),
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
    Demo(cli::demo::DemoArgs),
    /// A local environment: real API servers and a Cluster API provider simulator.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Write the JSON Schemas of Fleet, Cluster and ClusterProfile (for editors).
    Schema {
        /// Directory to write `*.schema.json` into, or `-` for one JSON object on stdout that
        /// maps each file name to its schema.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
    },
    /// Write a small valid fleet repository to start from: fleet.yaml, one Docker cluster, one
    /// profile with one layer, and the JSON Schemas its modelines point at.
    ///
    /// Refuses a directory that already holds fleet.yaml or clusters/.
    Init {
        /// Where to write it (created if missing).
        dir: PathBuf,
    },
    /// Print a shell completion script, e.g. `source <(cairn completion bash)`.
    Completion { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Start a management API server with the CAPI CRDs and the provider simulator in the
    /// background; returns once the server is ready.
    ///
    /// Needs Go the first time: kube-apiserver and etcd are built from the Go module proxy and
    /// cached (or set KUBEBUILDER_ASSETS). Then `export KUBECONFIG=DIR/mgmt.kubeconfig`.
    Up {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        /// How long the simulator takes to provision each machine.
        #[arg(long, default_value_t = 200)]
        machine_delay_ms: u64,
    },
    /// Show the processes of the local environment and whether its API server answers.
    /// Exit code 0 when everything runs, 2 otherwise.
    Status {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Stop every process of the local environment and remove its state.
    Down {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
    },
    /// Run the provider simulator in the foreground (what `up` starts in the background).
    #[command(hide = true)]
    Simulate {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        machine_delay_ms: u64,
    },
}

/// How to reach the management cluster, as kubectl does.
#[derive(clap::Args, Clone)]
struct KubeArgs {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, which may list several
    /// files separated by `:`, merged as kubectl merges them; then ~/.kube/config; then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

impl KubeArgs {
    async fn management(&self, force_conflicts: bool) -> Result<KubeClusterApi> {
        let found = cairn::kubeconfig::management_client(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
        )
        .await?;
        Ok(KubeClusterApi::with_server(
            found.client,
            found.server,
            force_conflicts,
        ))
    }
}

/// Which clusters to talk to.
#[derive(clap::Args)]
struct TargetArgs {
    /// Render and act on only these clusters (repeatable); all by default.
    #[arg(long = "cluster", value_name = "NAME")]
    clusters: Vec<String>,
    #[command(flatten)]
    kube: KubeArgs,
    /// Git URL the agents of pivoted clusters read (overrides fleet.yaml `spec.source.url`),
    /// e.g. a `file://` repository for local runs.
    #[arg(long, value_name = "URL")]
    source_url: Option<String>,
}

/// `90s`, `10m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s or 10m"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: use s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Which config repository to read.
#[derive(clap::Args)]
struct RepoArgs {
    /// Root of the config repository (default: the current directory).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Use the example fleet built into cairn instead of a repository.
    #[arg(long, conflicts_with = "repo")]
    example: bool,
}

impl RepoArgs {
    fn snapshot(&self) -> Result<RepoSnapshot> {
        if self.example {
            return Ok(cairn::example::example_snapshot());
        }
        Ok(RepoSnapshot::from_dir(&self.label())?)
    }

    fn label(&self) -> PathBuf {
        if self.example {
            return PathBuf::from("<example>");
        }
        self.repo.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        // A closed pipe (`cairn render --out - | head`) is the reader's choice, not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {}", cairn::errors::chain_anyhow(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(filter: &str) {
    // kube's client builder logs every failed request at ERROR, including the expected
    // refusals while an API server starts; cairn reports failures itself, with context.
    let quiet = format!("{filter},kube_client::client::builder=off");
    let filter = tracing_subscriber::EnvFilter::try_new(&quiet)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(cli::demo::log_writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(command: Command) -> Result<u8> {
    match command {
        Command::Validate { repo, output } => validate(&repo, output),
        Command::Render {
            repo,
            clusters,
            out,
        } => render(&repo, &clusters, &out),
        Command::Diff {
            repo,
            target,
            prune,
            output,
        } => tokio::runtime::Runtime::new()?.block_on(diff(&repo, &target, prune, output)),
        Command::Apply {
            repo,
            target,
            prune,
            timeout,
            concurrency,
            force_conflicts,
            revision,
        } => {
            let mut opts = ApplyOptions::new(prune, timeout, revision);
            opts.after_pivot_step = cli::fault_hook()?;
            tokio::runtime::Runtime::new()?.block_on(apply(
                &repo,
                &target,
                opts,
                concurrency,
                force_conflicts,
            ))
        }
        Command::Pivot {
            list_steps: true, ..
        } => {
            print!("{}", cli::list_steps());
            Ok(EXIT_OK)
        }
        Command::Pivot {
            cluster,
            kube,
            reverse,
            dry_run,
            list_steps: false,
            timeout,
            output,
        } => {
            let args = cli::PivotArgs {
                cluster: cluster.context("name the cluster to pivot")?,
                reverse,
                dry_run,
                json: output == OutputFormat::Json,
                timeout,
            };
            tokio::runtime::Runtime::new()?.block_on(async {
                cli::pivot(kube.management(false).await?, args).await?;
                Ok(EXIT_OK)
            })
        }
        Command::Status { kube, output } => {
            tokio::runtime::Runtime::new()?.block_on(fleet_status(&kube, output))
        }
        Command::Preview(args) => tokio::runtime::Runtime::new()?.block_on(async {
            let mgmt = match args.live {
                true => {
                    let kube = KubeArgs {
                        kubeconfig: args.kubeconfig.clone(),
                        context: args.context.clone(),
                    };
                    Some(kube.management(false).await?)
                }
                false => None,
            };
            cli::preview::preview(&args, mgmt).await
        }),
        Command::Run(args) => tokio::runtime::Runtime::new()?.block_on(cli::run::run(*args)),
        Command::Agent(args) => tokio::runtime::Runtime::new()?.block_on(cli::agent(args)),
        Command::Demo(args) => {
            tokio::runtime::Runtime::new()?.block_on(cli::demo::demo(args, &tools_dir()))
        }
        Command::Local(command) => tokio::runtime::Runtime::new()?.block_on(local(command)),
        Command::Schema { out } => write_schemas(&out),
        Command::Init { dir } => cli::init::init(&dir).map(|()| EXIT_OK),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "cairn", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }
}

fn validate(repo: &RepoArgs, output: OutputFormat) -> Result<u8> {
    let snap = repo.snapshot()?;
    let diagnostics = render::render_repo_with(&snap, &[], |_| Ok(()));
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    match output {
        OutputFormat::Text => {
            print_diagnostics(&diagnostics);
            if ok {
                eprintln!("{}: valid", repo.label().display());
            }
        }
        OutputFormat::Json => {
            let report = serde_json::json!({"valid": ok, "diagnostics": diagnostics});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_ERROR })
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for d in diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if errors > 0 {
        let _ = writeln!(
            err,
            "{errors} error(s), {warnings} warning(s); nothing was written"
        );
    }
}

fn render(repo: &RepoArgs, clusters: &[String], out: &str) -> Result<u8> {
    let snap = repo.snapshot()?;
    if out == "-" {
        let rendered = render::render_repo(&snap, clusters);
        print_diagnostics(&rendered.diagnostics);
        if rendered.has_errors() {
            return Ok(EXIT_ERROR);
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(output::bundles_stream(&rendered.bundles).as_bytes())?;
        return Ok(EXIT_OK);
    }
    let out_dir = PathBuf::from(out);
    // Bundles are streamed into a staging directory and moved into place only when the whole
    // repository rendered cleanly: a failed render never leaves half an output.
    let staging = output::Staging::create(&out_dir)?;
    let diagnostics = render::render_repo_with(&snap, clusters, |bundle| {
        staging.write(&bundle).map_err(|e| {
            Diagnostic::error(
                out_dir.join(&bundle.cluster).display().to_string(),
                Default::default(),
                format!("cannot write the rendered bundle: {e}"),
            )
        })
    });
    print_diagnostics(&diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        staging.discard();
        return Ok(EXIT_ERROR);
    }
    staging.commit()?;
    Ok(EXIT_OK)
}

/// Renders the selected clusters; diagnostics are printed, and errors end the command.
fn rendered_bundles(repo: &RepoArgs, target: &TargetArgs) -> Result<Option<Vec<render::Bundle>>> {
    let rendered = render::render_repo(&repo.snapshot()?, &target.clusters);
    print_diagnostics(&rendered.diagnostics);
    if rendered.has_errors() {
        return Ok(None);
    }
    let mut bundles = rendered.bundles;
    if let Some(url) = &target.source_url {
        for bundle in &mut bundles {
            render::pivot::override_source_url(bundle, url);
        }
    }
    Ok(Some(bundles))
}

async fn diff(
    repo: &RepoArgs,
    target: &TargetArgs,
    prune: bool,
    output: OutputFormat,
) -> Result<u8> {
    let Some(bundles) = rendered_bundles(repo, target)? else {
        return Ok(EXIT_ERROR);
    };
    let mgmt = Arc::new(target.kube.management(false).await?);
    let outcomes = cairn::lifecycle::diff::diff_fleet(mgmt, bundles, prune, 4).await;
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
    match output {
        OutputFormat::Text if plans.is_empty() => {}
        OutputFormat::Text => print!("{}", cairn::diff::text::render_text(&plans)),
        OutputFormat::Json => println!("{}", cairn::diff::text::render_json(&plans)),
    }
    Ok(if failed {
        EXIT_ERROR
    } else if plans.iter().any(|p| p.has_changes()) {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    })
}

async fn apply(
    repo: &RepoArgs,
    target: &TargetArgs,
    opts: ApplyOptions,
    concurrency: usize,
    force_conflicts: bool,
) -> Result<u8> {
    let Some(bundles) = rendered_bundles(repo, target)? else {
        return Ok(EXIT_ERROR);
    };
    let mgmt = Arc::new(target.kube.management(force_conflicts).await?);
    let spinners = std::io::stderr().is_terminal().then(Spinners::default);
    let mut opts = opts;
    if let Some(spinners) = &spinners {
        opts.progress = spinners.progress();
    }
    let rendered: Vec<String> = bundles.iter().map(|b| b.cluster.clone()).collect();
    // Clusters that left the repository are looked for only when the whole repository is
    // applied: with --cluster, every unselected cluster would look departed.
    let departed = if opts.prune && target.clusters.is_empty() {
        cairn::lifecycle::removal::departed(mgmt.as_ref(), &rendered).await?
    } else {
        Vec::new()
    };
    let removed = fleet::remove_departed(mgmt.clone(), departed, opts.clone(), concurrency).await;
    let outcomes = fleet::apply_fleet(mgmt, bundles, opts, concurrency).await;
    if let Some(spinners) = spinners {
        spinners.finish();
    }
    let mut failed = 0;
    for outcome in &removed {
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
                    cairn::errors::chain(e)
                );
            }
        }
    }
    for outcome in &outcomes {
        match &outcome.result {
            Ok(report) => {
                let orphans: Vec<String> = report
                    .stages
                    .iter()
                    .flat_map(|(_, r)| r.orphaned.clone())
                    .collect();
                eprintln!(
                    "cluster {}: Ready ({} written)",
                    outcome.cluster,
                    report.written()
                );
                if !orphans.is_empty() {
                    eprintln!(
                        "  kept objects that left the repository (use --prune to delete): {}",
                        orphans.join(", ")
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "cluster {}: FAILED: {}",
                    outcome.cluster,
                    cairn::errors::chain(e)
                );
            }
        }
    }
    let applied = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let deleted = removed.iter().filter(|o| o.result.is_ok()).count();
    eprintln!("{applied} cluster(s) applied, {deleted} deleted, {failed} failed");
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}

async fn fleet_status(kube: &KubeArgs, output: OutputFormat) -> Result<u8> {
    let mgmt = kube.management(false).await?;
    let rows = cairn::lifecycle::status::fleet_status(&mgmt).await?;
    match output {
        OutputFormat::Text => print!("{}", cairn::lifecycle::status::table(&rows)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    let unreachable = rows.iter().any(|r| r.location == "unreachable");
    Ok(if unreachable { EXIT_ERROR } else { EXIT_OK })
}

/// One spinner per cluster on a terminal, showing the step it is at.
#[derive(Clone, Default)]
struct Spinners {
    multi: indicatif::MultiProgress,
    bars: Arc<std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>>,
}

impl Spinners {
    fn progress(&self) -> cairn::apply::progress::Progress {
        let spinners = self.clone();
        Arc::new(move |cluster, step| {
            let mut bars = spinners.bars.lock().unwrap_or_else(|e| e.into_inner());
            let bar = bars.entry(cluster.to_string()).or_insert_with(|| {
                let bar = spinners.multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {wide_msg} {elapsed}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_prefix(cluster.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(step.to_string());
        })
    }

    fn finish(self) {
        for bar in self.bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish_and_clear();
        }
    }
}

/// Where the asset build scripts are: `$CAIRN_TOOLS_DIR`, `./tools`, or the source checkout
/// cairn was built from.
fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("tools");
    if here.join("build-assets.sh").exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

async fn local(command: LocalCommand) -> Result<u8> {
    use cairn::local::env;
    match command {
        LocalCommand::Up {
            dir,
            machine_delay_ms,
        } => {
            let report =
                env::up(&dir, &tools_dir(), Duration::from_millis(machine_delay_ms)).await?;
            eprintln!(
                "management API server ready at {} with {} CRDs; simulator pid {}",
                report.server, report.crds, report.simulator_pid
            );
            eprintln!("  export KUBECONFIG={}", report.kubeconfig.display());
            eprintln!(
                "  cairn local down --dir {}   # stops everything",
                dir.display()
            );
            Ok(EXIT_OK)
        }
        LocalCommand::Status { dir, output } => {
            let status = env::status(&dir).await;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                OutputFormat::Text => {
                    println!(
                        "{}: API server {}",
                        dir.display(),
                        if status.api_server_ready {
                            "ready"
                        } else {
                            "not answering"
                        }
                    );
                    for p in &status.processes {
                        println!(
                            "  {:<40} pid {:<8} {}",
                            p.name,
                            p.pid,
                            if p.running { "running" } else { "stopped" }
                        );
                    }
                }
            }
            Ok(if status.healthy() {
                EXIT_OK
            } else {
                EXIT_ERROR
            })
        }
        LocalCommand::Down { dir } => {
            let stopped = env::down(&dir)?;
            eprintln!("stopped {stopped} process(es); removed {}", dir.display());
            Ok(EXIT_OK)
        }
        LocalCommand::Simulate {
            dir,
            machine_delay_ms,
        } => {
            env::simulate(&dir, Duration::from_millis(machine_delay_ms)).await?;
            Ok(EXIT_OK)
        }
    }
}

fn write_schemas(out: &Path) -> Result<u8> {
    if out == Path::new("-") {
        let all: serde_json::Map<String, serde_json::Value> = cairn::model::schema::all_schemas()
            .into_iter()
            .map(|(file, schema)| (file.to_string(), schema))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(EXIT_OK);
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (file, schema) in cairn::model::schema::all_schemas() {
        let path = out.join(file);
        std::fs::write(&path, cairn::model::schema::schema_text(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(EXIT_OK)
}
