//! The `cairn` command line: parsing, logging and exit codes. The only place that exits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Write the JSON Schemas of Fleet, Cluster and ClusterProfile (for editors).
    Schema {
        /// Directory to write `*.schema.json` into.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
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
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
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
