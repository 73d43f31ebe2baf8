//! What several commands share: how to reach the management cluster, which repository and
//! clusters to act on, the output format, durations, and where the asset scripts are.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;

use cairn::apply::api::KubeClusterApi;
use cairn::model::{Diagnostic, RepoSnapshot};
use cairn::render;

/// How to reach the management cluster, as kubectl does.
#[derive(clap::Args, Clone)]
pub struct KubeArgs {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, which may list several
    /// files separated by `:`, merged as kubectl merges them; then ~/.kube/config; then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl KubeArgs {
    /// A client of the cluster the kubeconfig names, whose errors name its URL.
    pub async fn management(&self, force_conflicts: bool) -> Result<KubeClusterApi> {
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
pub struct TargetArgs {
    /// Render and act on only these clusters (repeatable); all by default.
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Git URL the agents of pivoted clusters read (overrides fleet.yaml `spec.source.url`),
    /// e.g. a `file://` repository for local runs.
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
}

/// Which config repository to read.
#[derive(clap::Args)]
pub struct RepoArgs {
    /// Root of the config repository (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Use the example fleet built into cairn instead of a repository.
    #[arg(long, conflicts_with = "repo")]
    pub example: bool,
}

impl RepoArgs {
    pub fn snapshot(&self) -> Result<RepoSnapshot> {
        if self.example {
            return Ok(cairn::example::example_snapshot());
        }
        Ok(RepoSnapshot::from_dir(&self.label())?)
    }

    pub fn label(&self) -> PathBuf {
        if self.example {
            return PathBuf::from("<example>");
        }
        self.repo.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The bundles of the selected clusters, with diagnostics printed; `None` when the
    /// repository has errors (the command then ends with a failure).
    pub fn target_bundles(&self, target: &TargetArgs) -> Result<Option<Vec<render::Bundle>>> {
        let rendered = render::render_repo(&self.snapshot()?, &target.clusters);
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
}

/// Diagnostics on stderr, one a line, then a count when there are errors.
pub fn print_diagnostics(diagnostics: &[Diagnostic]) {
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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

/// Where the asset build scripts are: `$CAIRN_TOOLS_DIR`, `./tools`, or the source checkout
/// cairn was built from.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("tools");
    if here.join("build-assets.sh").exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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
