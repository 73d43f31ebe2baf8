//! The `cairn` command line: parsing, logging and exit codes. The only place that exits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use cairn::model::{Diagnostic, RepoSnapshot};
use cairn::render::{self, output};

/// Exit code when everything is fine.
const EXIT_OK: u8 = 0;
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
    #[arg(long, global = true, env = "CAIRN_LOG", default_value = "warn")]
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
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
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
    /// A local environment: real API servers and a Cluster API provider simulator.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Write the JSON Schemas of Fleet, Cluster and ClusterProfile (for editors).
    Schema {
        /// Directory to write `*.schema.json` into.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
    },
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
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
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
            eprintln!("error: {e:#}");
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
        .with_writer(std::io::stderr)
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
        Command::Local(command) => tokio::runtime::Runtime::new()?.block_on(local(command)),
        Command::Schema { out } => write_schemas(&out),
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
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (file, schema) in cairn::model::schema::all_schemas() {
        let path = out.join(file);
        std::fs::write(&path, cairn::model::schema::schema_text(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(EXIT_OK)
}
