//! `cairn agent`: the agent of one pivoted cluster, in a loop or for one pass.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::ExitStatus;
use super::args::{parse_duration, shutdown_signal};
use cairn::agent::{Agent, AgentOptions};
use cairn::apply::api::KubeClusterApi;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The cluster this agent runs in (its name in the repository).
    #[arg(long)]
    cluster: String,
    /// Kubeconfig of the workload cluster (default: $KUBECONFIG, ~/.kube/config, then the
    /// in-cluster service account, which is what a pod uses).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The agent config (default: ConfigMap cairn-system/cairn-agent-config).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overrides the config's git URL.
    #[arg(long, value_name = "URL")]
    source_url: Option<String>,
    /// Overrides the config's branch.
    #[arg(long)]
    branch: Option<String>,
    /// Pause between passes, e.g. 30s, 1m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Where the git mirror is kept (default: a directory under $TMPDIR).
    #[arg(long, value_name = "DIR", env = "CAIRN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Longest wait for any one step of a pass.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Delete objects that left the repository.
    #[arg(long)]
    prune: bool,
    /// One pass, its record printed as JSON; exit code 2 if it recorded an error.
    #[arg(long)]
    once: bool,
}

impl AgentArgs {
    fn options(&self) -> AgentOptions {
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-agent-{}", self.cluster)));
        AgentOptions {
            cluster: self.cluster.clone(),
            config_file: self.config.clone(),
            source_url: self.source_url.clone(),
            branch: self.branch.clone(),
            poll_interval: self.poll_interval,
            state_dir,
            timeout: self.timeout,
            prune: self.prune,
        }
    }
}

/// The agent loop until SIGTERM or Ctrl-C, or one pass with `--once`.
pub async fn run(args: &AgentArgs) -> Result<ExitStatus> {
    let found = cairn::kubeconfig::management_client(args.kubeconfig.as_deref(), None).await?;
    let api = KubeClusterApi::with_server(found.client, found.server, false);
    let mut agent = Agent::new(api, args.options());
    if args.once {
        let status = agent.pass().await;
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitStatus::failed_unless(status.last_error.is_none()));
    }
    agent.run(shutdown_signal()).await;
    Ok(ExitStatus::Success)
}
