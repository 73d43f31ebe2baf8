//! `cairn run`: the controller with its HTTP server and, optionally, leader election.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::ExitStatus;
use super::args::{KubeArgs, parse_duration, shutdown_signal};
use cairn::controller::leader::{Elector, LeaseConfig, default_identity};
use cairn::controller::relay::relay;
use cairn::controller::schedule::Backoff;
use cairn::controller::shared::Shared;
use cairn::controller::{Controller, ControllerOptions, http};
use cairn::lifecycle::removal::MaxPrune;
use cairn::source::{Credentials, SourceSpec};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The config repository: a local path, file://, https:// or ssh URL. Credentials come from
    /// CAIRN_GIT_SSH_KEY_FILE, CAIRN_GIT_TOKEN_FILE and CAIRN_GIT_USERNAME, never from here.
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The config repository's directory inside the git repository.
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Address of the public HTTP server: the webhooks (POST /webhook/github, /webhook/gitlab),
    /// /healthz and /readyz. This is the one a git host reaches.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the status HTTP server: /metrics, /status, /healthz and /readyz, or `off`.
    /// Never the webhooks' address: /status names every cluster, its errors and the source.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8081", value_parser = parse_listen)]
    pub status_listen: Listen,
    /// Where the git mirror is kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "CAIRN_STATE_DIR",
        default_value = ".cairn/run"
    )]
    pub state_dir: PathBuf,
    /// How often the source is fetched (±10% jitter); a push webhook fetches at once.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How often a converged cluster is checked for drift.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub reconcile_interval: Duration,
    /// How many clusters are reconciled at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Longest wait for any one step of a cluster.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Delete objects (and clusters) that left the repository.
    #[arg(long)]
    pub prune: bool,
    /// Most clusters one prune may delete: a count, or a share of the fleet like 10% (at least
    /// one). A revision that would delete more deletes nothing, and /status says why.
    #[arg(long, value_name = "N|P%", default_value_t = MaxPrune::default())]
    pub max_prune: MaxPrune,
    /// Git URL the agents of pivoted clusters read (overrides fleet.yaml `spec.source.url`).
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
    /// File holding the webhook secret (GitHub HMAC key, GitLab token). Without it (or when
    /// the file does not exist), webhooks answer 401 and only polling brings new commits.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// First wait after a cluster fails; doubles with each failure in a row.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub backoff: Duration,
    /// Longest wait between tries of a failing cluster.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Reconcile only while holding the Lease `--lease-name` (for several replicas).
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "cairn-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "cairn-controller")]
    pub lease_name: String,
    /// How long a leader's Lease lasts without renewal: a new leader takes over within it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the election (default: $POD_NAME, else host and pid).
    #[arg(long)]
    pub identity: Option<String>,
    /// On SIGTERM, how long clusters being reconciled get to finish.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Where a server listens, or that it is off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen::Off);
    }
    text.parse()
        .map(Listen::At)
        .map_err(|_| format!("`{text}` is neither an address like 127.0.0.1:8081 nor `off`"))
}

/// A listener on `address`, the error naming the flag.
async fn bind(flag: &str, address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({flag})"))
}

impl RunArgs {
    fn options(&self) -> ControllerOptions {
        ControllerOptions {
            source: SourceSpec {
                url: self.repo.clone(),
                branch: self.branch.clone(),
                credentials: Credentials::from_env(),
            },
            path: self.path.clone(),
            state_dir: self.state_dir.clone(),
            poll_interval: self.poll_interval,
            reconcile_interval: self.reconcile_interval,
            concurrency: self.concurrency,
            timeout: self.timeout,
            prune: self.prune,
            max_prune: self.max_prune,
            agent_source_url: self.source_url.clone(),
            backoff: Backoff {
                base: self.backoff,
                max: self.max_backoff,
            },
            shutdown_grace: self.shutdown_grace,
        }
    }

    fn webhook_secret(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.webhook_secret_file else {
            return Ok(None);
        };
        // The Secret behind the file is optional in deploy/: without it, webhooks are off.
        let text = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %path.display(), "no webhook secret: webhooks answer 401, commits arrive by polling");
                return Ok(None);
            }
            read => {
                read.with_context(|| format!("cannot read the webhook secret {}", path.display()))?
            }
        };
        // Files written by `echo` or kubectl end in a newline that is not part of the secret.
        let secret = text.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(
            !secret.is_empty(),
            "the webhook secret file {} is empty",
            path.display()
        );
        Ok(Some(secret.as_bytes().to_vec()))
    }
}

/// The controller until SIGTERM or Ctrl-C; then the reconciles in flight get their grace
/// period, the Lease is released and the process exits 0.
pub async fn run(args: RunArgs) -> Result<ExitStatus> {
    if args.status_listen == Listen::At(args.listen) && args.listen.port() != 0 {
        anyhow::bail!(
            "--status-listen {} is the --listen address: /status and /metrics are served apart \
             from the webhooks; pick another port, or `off`",
            args.listen
        );
    }
    let mgmt = args.kube.management(false).await?;
    let client = mgmt.dynamic().client().clone();
    let shared = Arc::new(Shared::new(
        cairn::source::strip_userinfo(&args.repo),
        args.branch.clone(),
        args.webhook_secret()?,
    ));
    let controller = Controller::new(mgmt, args.options(), shared.clone()).await?;
    let listener = bind("--listen", args.listen).await?;
    let status_listener = match args.status_listen {
        Listen::Off => None,
        Listen::At(address) => Some(bind("--status-listen", address).await?),
    };
    let status_address = match args.status_listen {
        Listen::Off => "off".to_string(),
        Listen::At(address) => address.to_string(),
    };
    tracing::info!(listen = %args.listen, status_listen = %status_address, repo = %cairn::source::strip_userinfo(&args.repo), branch = %args.branch, "cairn controller started");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let limits = http::Limits::default();
    let server = tokio::spawn(http::serve(
        listener,
        http::public_router(shared.clone(), limits),
        limits,
        stopped(),
    ));
    let status_server = status_listener.map(|listener| {
        tokio::spawn(http::serve(
            listener,
            http::status_router(shared.clone(), limits),
            limits,
            stopped(),
        ))
    });
    let (leading_tx, leading_rx) = watch::channel(!args.leader_elect);
    // An election that cannot go on (no namespace for the Lease) ends the process with its error.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let elector = args.leader_elect.then(|| {
        let mut config = LeaseConfig::new(
            &args.lease_namespace,
            &args.lease_name,
            args.identity.clone().unwrap_or_else(default_identity),
        );
        config.lease_duration = args.lease_duration;
        config.renew_period = (args.lease_duration / 5).max(Duration::from_millis(200));
        let elector = Elector::new(client.clone(), config);
        tokio::spawn(relay(
            kube::Api::namespaced(client, &args.lease_namespace),
            args.lease_name.clone(),
            shared.clone(),
            leading_rx.clone(),
            elector.fetch_requests(),
            stopped(),
        ));
        let election = elector.run(leading_tx, stopped());
        tokio::spawn(async move {
            if let Err(e) = election.await {
                let _ = failed_tx.send(e);
            }
        })
    });
    let failure = Arc::new(std::sync::Mutex::new(None));
    let record = failure.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            Ok(e) = failed_rx => *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(e),
        }
    };
    controller.run(leading_rx, shutdown).await;
    // Reconciles are over (or stopped): only now may another replica take the lead.
    let _ = stop_tx.send(true);
    if let Some(elector) = elector {
        elector.await?;
    }
    server.await.context("the HTTP server")?;
    if let Some(status_server) = status_server {
        status_server.await.context("the status HTTP server")?;
    }
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(anyhow::Error::new(e).context("leader election"));
    }
    tracing::info!("cairn controller stopped");
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_address_is_an_address_or_off() {
        assert_eq!(parse_listen("off"), Ok(Listen::Off));
        assert_eq!(
            parse_listen("0.0.0.0:8081"),
            Ok(Listen::At("0.0.0.0:8081".parse().unwrap()))
        );
        for wrong in ["", "8081", "localhost:8081", "Off"] {
            assert!(parse_listen(wrong).is_err(), "{wrong}");
        }
    }
}
