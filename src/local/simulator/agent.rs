//! The agent: when the `cairn-agent` Deployment appears in `cairn-system` of a workload
//! cluster, the simulator runs the configured command as a local process in its place (and
//! reports the Deployment available while it runs); it restarts the process with backoff when
//! it exits, and stops it when the Deployment or the cluster goes away.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::objects::{ident, is_deleting};
use super::pod::{self, Launch};
use super::status::{now, set_observed_generation};
use super::{AgentImage, ClusterState, Report, SimulatorConfig, SimulatorError};

pub const AGENT_NAMESPACE: &str = "cairn-system";
pub const AGENT_DEPLOYMENT: &str = "cairn-agent";

/// The agent process of one cluster, and when to restart it.
#[derive(Default)]
pub struct AgentSlot {
    child: Option<Child>,
    /// The pod template the process was started from.
    template: Option<Value>,
    restarts: u32,
    not_before: Option<Instant>,
}

impl AgentSlot {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process if it runs; true when there was one.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            None => false,
        }
    }

    /// Whether the process runs (reaping it, and scheduling a restart, if it exited).
    fn running(&mut self, cluster: &str) -> bool {
        let Some(child) = &mut self.child else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.restarts += 1;
                let backoff = Duration::from_secs(1 << self.restarts.min(6));
                tracing::warn!(%cluster, %status, ?backoff, "the agent exited; restarting it later");
                self.not_before = Some(Instant::now() + backoff);
                self.child = None;
                false
            }
            Err(_) => true,
        }
    }
}

impl Drop for AgentSlot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    image: &AgentImage,
    cluster: &str,
    launch: &Launch,
    log: &Path,
) -> Result<Child, SimulatorError> {
    let args: Vec<&String> = image
        .entrypoint
        .iter()
        .chain(&launch.args)
        .chain(&image.extra_args)
        .collect();
    let failed = |source| SimulatorError::Agent {
        cluster: cluster.to_string(),
        command: args
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        source,
    };
    let (program, rest) = args.split_first().ok_or_else(|| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the agent image's entrypoint is empty",
        ))
    })?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(failed)?;
    let err = out.try_clone().map_err(failed)?;
    let mut cmd = Command::new(program);
    // Only what the pod would have: its env, not this process's.
    cmd.args(rest)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    use std::os::unix::process::CommandExt;
    // SAFETY: only prctl, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(failed)
}

/// Starts, keeps or stops the agent of one cluster.
pub async fn reconcile(
    config: &SimulatorConfig,
    state: &mut ClusterState,
    report: &mut Report,
) -> Result<(), SimulatorError> {
    let Some(workload) = &state.workload else {
        return Ok(());
    };
    let server = workload.server.clone();
    let wanted = ident("apps/v1", "Deployment", AGENT_NAMESPACE, AGENT_DEPLOYMENT);
    let deployment = server.fetch(&wanted).await?.filter(|d| !is_deleting(d));
    let Some(deployment) = deployment else {
        if state.agent.stop() {
            report.agents_stopped.push(state.name.clone());
        }
        return Ok(());
    };
    let Some(image) = &config.agent_image else {
        return Ok(());
    };
    let name = state.name.clone();
    let template = deployment["spec"]["template"].clone();
    if state
        .agent
        .template
        .as_ref()
        .is_some_and(|t| *t != template)
        && state.agent.stop()
    {
        // A new pod template is a new pod: restarted at once, with what it now says.
        tracing::info!(cluster = %name, "the agent's pod template changed; restarting it");
        state.agent.not_before = None;
    }
    if !state.agent.running(&name) && state.agent.not_before.is_none_or(|t| Instant::now() >= t) {
        let nodes = server.list("v1", "Node", None, None).await?;
        let dir = config.state_dir.join(&state.name).join("agent-pod");
        match pod::prepare(&server, &workload.kubeconfig, &deployment, &nodes, &dir).await? {
            Err(pending) => {
                tracing::debug!(cluster = %name, %pending, "the agent's pod cannot start");
                let status = super::workloads::unavailable_status(&deployment, &pending);
                server
                    .set_status(&deployment, status, "set the agent Deployment status")
                    .await?;
                return Ok(());
            }
            Ok(launch) => {
                let log = config.state_dir.join(&state.name).join("agent.log");
                let child = spawn(image, &name, &launch, &log)?;
                tracing::info!(cluster = %name, pid = child.id(), "started the agent");
                state.agent.child = Some(child);
                state.agent.template = Some(template);
                report.agents_started.push(name.clone());
            }
        }
    }
    if state.agent.running(&name) {
        let replicas = deployment
            .pointer("/spec/replicas")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(1);
        let previous = deployment.pointer("/status/conditions");
        let since = previous
            .and_then(|c| c.as_array())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Available" && c["status"] == "True")
            })
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(now);
        let mut status = json!({
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            // Merge-patched: clears the count a pod that could not start left.
            "unavailableReplicas": null,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "the agent's pod runs as a local process (cairn simulator)",
                 "lastUpdateTime": since, "lastTransitionTime": since},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "the agent's pod runs as a local process (cairn simulator)",
                 "lastUpdateTime": since, "lastTransitionTime": since},
            ],
        });
        set_observed_generation(&mut status, &deployment);
        server
            .set_status(&deployment, status, "set the agent Deployment status")
            .await?;
    }
    Ok(())
}
