//! The provider simulator (DESIGN.md §7): it stands in for Cluster API's controllers (core,
//! kubeadm bootstrap, kubeadm control plane), the infrastructure providers (CAPD, CAPV, CAPA)
//! and their cloud, and for kube-controller-manager (garbage collector, namespace controller,
//! workload controllers) and the kubelets.
//!
//! Each pass lists the Clusters in the management server and in every workload server it runs
//! (so a Cluster is followed after `clusterctl move`-style pivots), and for each one that is not
//! paused: provisions its infrastructure cluster, expands its KubeadmControlPlane and
//! MachineDeployments into MachineSets, Machines, KubeadmConfigs, infrastructure machines and
//! Secrets shaped and owned as the real controllers make them, rolls them when their templates
//! or version change, starts a real kube-apiserver for the workload cluster at its first
//! control-plane machine, registers a Node per machine there (control-plane Nodes tainted as
//! kubeadm taints them; NotReady, with the not-ready taint, until a CNI DaemonSet's pod runs
//! on it, as a kubelet without a network plugin and the node lifecycle controller have it), writes every status through the status subresource, runs the
//! agent's pod as its Deployment says when it can be scheduled (`pod`: its ServiceAccount's
//! token, its volumes, its args), and tears it all down when the Cluster is deleted. Add-on workloads in the workload servers are reported rolled out,
//! Namespaces being deleted are emptied and finalized, and orphans (objects whose owners are
//! gone) are deleted, since there is no kube-controller-manager.

mod agent;
mod certmanager;
mod cluster;
mod controlplane;
mod machinedeployment;
mod machines;
mod naming;
mod objects;
mod pod;
mod providers;
mod schema;
mod secrets;
mod status;
mod teardown;
mod workload;
mod workloads;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kube_client::KubeError;
use crate::local::{ApiServerError, Assets};
use objects::{CAPI, name, s};
use schema::Server;
use workload::Workload;

pub use objects::FIELD_MANAGER;
pub use pod::schedulable;

/// How the simulator runs.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Admin kubeconfig (YAML) of the management API server.
    pub mgmt_kubeconfig: String,
    /// Where workload API servers keep their data: `<state_dir>/<cluster>/apiserver`.
    pub state_dir: PathBuf,
    pub assets: Assets,
    /// How long a new machine takes to come up.
    pub machine_delay: Duration,
    /// Pause between passes of [`run`].
    pub poll_interval: Duration,
    /// Leave the workload API servers running when the simulator stops (`cairn local up`).
    pub detach_workload_servers: bool,
    /// What stands for the agent's image when the `cairn-agent` Deployment appears in a
    /// workload cluster: its pod runs as a local process (see `pod`). `None`: not run.
    pub agent_image: Option<AgentImage>,
}

/// The agent's container image, as a local command.
#[derive(Clone, Debug)]
pub struct AgentImage {
    /// The image's entrypoint (`cairn`, as the Dockerfile's); the container's args follow.
    pub entrypoint: Vec<String>,
    /// Appended after the container's args (a local environment polls faster than a cluster).
    pub extra_args: Vec<String>,
}

impl SimulatorConfig {
    pub fn new(mgmt_kubeconfig: String, state_dir: PathBuf, assets: Assets) -> SimulatorConfig {
        SimulatorConfig {
            mgmt_kubeconfig,
            state_dir,
            assets,
            machine_delay: Duration::from_millis(200),
            poll_interval: Duration::from_millis(500),
            detach_workload_servers: false,
            agent_image: None,
        }
    }

    /// This executable as the agent's image, polling every 5 s.
    pub fn default_agent_image() -> Option<AgentImage> {
        let exe = std::env::current_exe().ok()?;
        Some(AgentImage {
            entrypoint: vec![exe.to_string_lossy().into_owned()],
            extra_args: vec!["--poll-interval".into(), "5s".into()],
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("cannot connect to {server}")]
    Connect {
        server: String,
        #[source]
        source: Box<crate::kube_client::KubeconfigTextError>,
    },
    #[error("{step}")]
    Kube {
        step: &'static str,
        #[source]
        source: Box<KubeError>,
    },
    #[error("{server} does not serve {kind}: {detail}")]
    UnknownKind {
        server: String,
        kind: String,
        detail: String,
    },
    #[error("{referrer} references {object}, which does not exist (yet)")]
    MissingRef { referrer: String, object: String },
    #[error("{object}: {problem}")]
    Unsupported { object: String, problem: String },
    #[error("cannot start the workload API server of Cluster {cluster}")]
    WorkloadServer {
        cluster: String,
        #[source]
        source: Box<ApiServerError>,
    },
    #[error("cannot {step} ({path})")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate {what} for Cluster {cluster}")]
    Certs {
        cluster: String,
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot issue the certificate of {certificate}")]
    Issue {
        certificate: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write the files of a pod at {}", .path.display())]
    PodFiles {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the agent of Cluster {cluster} ({command})")]
    Agent {
        cluster: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the rolled-out status of {object}")]
    WorkloadStatus {
        object: String,
        #[source]
        source: Box<KubeError>,
    },
    #[error("cannot discover the resources {server} serves")]
    Discover {
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot finalize Namespace {namespace} in {server}")]
    FinalizeNamespace {
        namespace: String,
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("Cluster {cluster} was paused or moved during the pass; it stops here")]
    Interrupted { cluster: String },
    #[error("Cluster {cluster}")]
    InCluster {
        cluster: String,
        #[source]
        source: Box<SimulatorError>,
    },
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// `namespace/name@where` of every Cluster reconciled.
    pub clusters: Vec<String>,
    /// Clusters left alone because `spec.paused` is set.
    pub paused: Vec<String>,
    /// Clusters left alone because their providers do not run where they live:
    /// `namespace/name@server: provider, ...`.
    pub without_providers: Vec<String>,
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// Machines that came up in this pass.
    pub provisioned: Vec<String>,
    pub servers_started: Vec<String>,
    pub servers_stopped: Vec<String>,
    pub agents_started: Vec<String>,
    pub agents_stopped: Vec<String>,
    /// Failures; each one concerns one cluster or object, the others went on.
    pub errors: Vec<SimulatorError>,
}

impl Report {
    /// Whether the pass changed nothing and met no error.
    pub fn is_quiet(&self) -> bool {
        self.created.is_empty()
            && self.deleted.is_empty()
            && self.provisioned.is_empty()
            && self.servers_started.is_empty()
            && self.servers_stopped.is_empty()
            && self.agents_started.is_empty()
            && self.agents_stopped.is_empty()
            && self.errors.is_empty()
    }
}

/// What the simulator keeps about one Cluster between passes.
pub(crate) struct ClusterState {
    pub name: String,
    /// The server its CAPI objects live in now.
    pub location: String,
    pub workload: Option<Workload>,
    pub agent: agent::AgentSlot,
    /// Consecutive complete passes that did not find the Cluster anywhere.
    pub missing_passes: u32,
}

/// What one cluster's reconciliation works with.
pub(crate) struct Ctx<'a> {
    pub config: &'a SimulatorConfig,
    /// The server the Cluster's objects live in.
    pub server: Arc<Server>,
    pub cluster: Value,
    pub name: String,
    pub namespace: String,
    pub state: &'a mut ClusterState,
    pub first_seen: &'a mut HashMap<String, Instant>,
    pub report: &'a mut Report,
}

impl Ctx<'_> {
    /// Whether `machine_delay` has passed since the machine was first seen.
    pub fn due(&mut self, machine: &Value) -> bool {
        let seen = *self
            .first_seen
            .entry(s(machine, "/metadata/uid").to_string())
            .or_insert_with(Instant::now);
        seen.elapsed() >= self.config.machine_delay
    }

    /// Starts the workload API server unless it runs, and writes the cluster Secrets.
    pub async fn ensure_workload(&mut self, kcp: &Value) -> Result<(), SimulatorError> {
        if self.state.workload.is_none() {
            let dir = self.config.state_dir.join(&self.name).join("apiserver");
            let started = Workload::start(
                &self.name,
                &dir,
                &self.config.assets,
                self.config.detach_workload_servers,
            )
            .await?;
            tracing::info!(
                cluster = %self.name,
                port = started.port,
                "started the workload API server"
            );
            self.report.servers_started.push(self.name.clone());
            self.state.workload = Some(started);
        }
        self.write_secrets(kcp).await
    }

    /// Fails with [`SimulatorError::Interrupted`] when the Cluster has been paused (or moved
    /// away) since the pass read it: like CAPI's controllers, which check `spec.paused` before
    /// they act, the simulator must not create or delete machines under a running move.
    pub async fn ensure_active(&self) -> Result<(), SimulatorError> {
        let cluster = objects::ident(CAPI, "Cluster", &self.namespace, &self.name);
        match self.server.fetch(&cluster).await? {
            Some(live) if !is_paused(&live) => Ok(()),
            _ => Err(SimulatorError::Interrupted {
                cluster: format!("{}/{}", self.namespace, self.name),
            }),
        }
    }

    /// Deletes `obj` from the server the Cluster lives in, reporting it when it was there.
    pub async fn delete(&mut self, obj: &Value, step: &'static str) -> Result<(), SimulatorError> {
        if self.server.delete(obj, step).await? {
            self.report.deleted.push(objects::object_ref(obj));
        }
        Ok(())
    }

    /// Writes the kubeconfig and certificate Secrets that are missing or stale.
    pub async fn write_secrets(&mut self, kcp: &Value) -> Result<(), SimulatorError> {
        let Some(workload) = &self.state.workload else {
            return Ok(());
        };
        let written = secrets::write_cluster_secrets(
            &self.server,
            &self.name,
            &self.namespace,
            kcp,
            workload,
        )
        .await?;
        self.report.created.extend(
            written
                .into_iter()
                .map(|n| format!("Secret/{}/{n}", self.namespace)),
        );
        Ok(())
    }
}

/// The simulator, driven pass by pass with [`Simulator::reconcile_once`].
pub struct Simulator {
    config: SimulatorConfig,
    mgmt: Arc<Server>,
    clusters: BTreeMap<String, ClusterState>,
    first_seen: HashMap<String, Instant>,
    last_gc: Option<Instant>,
    gc_due: bool,
}

/// How often orphans are looked for when nothing was deleted.
const GC_INTERVAL: Duration = Duration::from_secs(5);

impl Simulator {
    pub async fn new(config: SimulatorConfig) -> Result<Simulator, SimulatorError> {
        let client = crate::kube_client::client_from_kubeconfig(&config.mgmt_kubeconfig)
            .await
            .map_err(|source| SimulatorError::Connect {
                server: "the management server".to_string(),
                source: Box::new(source),
            })?;
        Ok(Simulator {
            config,
            mgmt: Arc::new(Server::new("the management server", client)),
            clusters: BTreeMap::new(),
            first_seen: HashMap::new(),
            last_gc: None,
            gc_due: true,
        })
    }

    /// The management server and every workload server running.
    fn servers(&self) -> Vec<Arc<Server>> {
        let mut servers = vec![self.mgmt.clone()];
        servers.extend(
            self.clusters
                .values()
                .filter_map(|s| s.workload.as_ref().map(|w| w.server.clone())),
        );
        servers
    }

    fn state(&self, cluster: &str) -> Option<&ClusterState> {
        self.clusters
            .iter()
            .find(|(key, state)| key.as_str() == cluster || state.name == cluster)
            .map(|(_, state)| state)
    }

    /// The admin kubeconfig of a cluster's workload server (`name` or `namespace/name`).
    pub fn workload_kubeconfig(&self, cluster: &str) -> Option<&str> {
        self.state(cluster)?
            .workload
            .as_ref()
            .map(|w| w.kubeconfig.as_str())
    }

    /// Process ids of a cluster's workload etcd and kube-apiserver; empty when none runs.
    pub fn workload_pids(&self, cluster: &str) -> Vec<u32> {
        self.state(cluster)
            .and_then(|s| s.workload.as_ref())
            .map(Workload::pids)
            .unwrap_or_default()
    }

    /// The pid of a cluster's agent process, while it runs.
    pub fn agent_pid(&self, cluster: &str) -> Option<u32> {
        self.state(cluster)?.agent.pid()
    }

    /// Where a cluster's CAPI objects were last found.
    pub fn location(&self, cluster: &str) -> Option<&str> {
        self.state(cluster).map(|s| s.location.as_str())
    }

    /// One pass over every cluster. Per-cluster failures, and servers that cannot be read, are
    /// in the report.
    pub async fn reconcile_once(&mut self) -> Result<Report, SimulatorError> {
        let mut report = Report::default();

        // Where is every Cluster? The management server first, then the workload servers, so
        // a Cluster being moved out of the management server is always seen somewhere.
        let mut found: BTreeMap<String, Vec<(Arc<Server>, Value)>> = BTreeMap::new();
        let mut complete = true;
        for server in self.servers() {
            match server.list(CAPI, "Cluster", None, None).await {
                Ok(clusters) => {
                    for cluster in clusters {
                        let key =
                            format!("{}/{}", s(&cluster, "/metadata/namespace"), name(&cluster));
                        found
                            .entry(key)
                            .or_default()
                            .push((server.clone(), cluster));
                    }
                }
                // An unreachable server (the management one included: pivoted clusters must
                // keep working while it is down) hides its Clusters for this pass only.
                Err(e) => {
                    complete = false;
                    tracing::warn!(
                        "cannot list the Clusters in {}: {}",
                        server.label,
                        crate::errors::chain(&e)
                    );
                    report.errors.push(e);
                }
            }
        }

        for (key, mut candidates) in found.clone() {
            // A copy that is not paused wins; then the one furthest from the management server.
            candidates.reverse();
            candidates.sort_by_key(|(_, c)| is_paused(c));
            let (server, cluster) = candidates.swap_remove(0);
            let namespace = s(&cluster, "/metadata/namespace").to_string();
            let cluster_name = name(&cluster).to_string();
            if !self.clusters.contains_key(&key) {
                let dir = self.config.state_dir.join(&cluster_name).join("apiserver");
                let attached = Workload::attach(&cluster_name, &dir).await;
                if attached.is_some() {
                    tracing::info!(cluster = %cluster_name, "attached to the running workload API server");
                }
                self.clusters.insert(
                    key.clone(),
                    ClusterState {
                        name: cluster_name.clone(),
                        location: String::new(),
                        workload: attached,
                        agent: agent::AgentSlot::default(),
                        missing_passes: 0,
                    },
                );
            }
            let Simulator {
                config,
                clusters,
                first_seen,
                ..
            } = self;
            let state = clusters.get_mut(&key).expect("inserted above");
            state.missing_passes = 0;
            if state.location != server.label {
                if !state.location.is_empty() {
                    tracing::info!(cluster = %key, from = %state.location, to = %server.label, "following the Cluster");
                }
                state.location = server.label.clone();
            }
            let mut ctx = Ctx {
                config,
                server,
                cluster,
                name: cluster_name.clone(),
                namespace,
                state,
                first_seen,
                report: &mut report,
            };
            let reconciled = cluster::reconcile(&mut ctx).await;
            report_in_cluster(&mut report, &key, reconciled);
            let agent =
                agent::reconcile(config, clusters.get_mut(&key).expect("kept"), &mut report).await;
            report_in_cluster(&mut report, &key, agent);
        }

        // Clusters that are gone everywhere: stop what they ran.
        let missing: Vec<String> = self
            .clusters
            .keys()
            .filter(|k| !found.contains_key(*k))
            .cloned()
            .collect();
        for key in missing {
            let state = self.clusters.get_mut(&key).expect("listed");
            if complete {
                state.missing_passes += 1;
            }
            if state.missing_passes >= 2 {
                let mut state = self.clusters.remove(&key).expect("listed");
                tracing::info!(cluster = %key, "the Cluster is gone; stopping its servers");
                teardown::stop(&mut state, &mut report);
                self.gc_due = true;
            }
        }

        // kube-controller-manager and the kubelets: add-on statuses in the workload servers,
        // cert-manager where it runs, and Namespaces being deleted everywhere.
        for (i, server) in self.servers().iter().enumerate() {
            let nodes = match i {
                0 => workloads::Nodes::Management,
                _ => workloads::Nodes::Simulated,
            };
            let mut result = match nodes {
                workloads::Nodes::Simulated => workload::sync_readiness(server).await,
                workloads::Nodes::Management => Ok(()),
            };
            if result.is_ok() {
                result = workloads::reconcile(server, nodes).await;
            }
            if result.is_ok() {
                result = certmanager::reconcile(server, &mut report).await;
            }
            if result.is_ok() {
                result = workloads::finish_namespaces(server, &mut report).await;
            }
            if let Err(e) = result {
                tracing::warn!("{}: {e}", server.label);
                report.errors.push(e);
            }
        }

        // The garbage collector.
        let gc_now = self.gc_due
            || !report.deleted.is_empty()
            || self.last_gc.is_none_or(|t| t.elapsed() >= GC_INTERVAL);
        if gc_now {
            let deleted_before = report.deleted.len();
            for server in self.servers() {
                if let Err(e) = teardown::collect_garbage(&server, &mut report).await {
                    tracing::warn!("garbage collection in {}: {e}", server.label);
                    report.errors.push(e);
                }
            }
            self.last_gc = Some(Instant::now());
            // Deleting owners orphans their children: look again next pass.
            self.gc_due = report.deleted.len() > deleted_before;
        }
        for line in report
            .created
            .iter()
            .map(|o| format!("created {o}"))
            .chain(report.deleted.iter().map(|o| format!("deleted {o}")))
        {
            tracing::debug!("{line}");
        }
        Ok(report)
    }

    /// Stops every agent, and every workload server unless they are to outlive the simulator.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let detach = self.config.detach_workload_servers;
        for (_, mut state) in std::mem::take(&mut self.clusters) {
            state.agent.stop();
            if let Some(workload) = state.workload.take() {
                if detach {
                    workload.release();
                } else {
                    workload.stop();
                }
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Runs passes every `poll_interval` until `shutdown` turns true (or its sender goes away),
/// then stops the agents and the workload servers it started (unless detached).
pub async fn run(
    config: SimulatorConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), SimulatorError> {
    let poll = config.poll_interval;
    let mut simulator = Simulator::new(config).await?;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match simulator.reconcile_once().await {
            Ok(report) if !report.is_quiet() => tracing::info!(
                created = report.created.len(),
                deleted = report.deleted.len(),
                provisioned = report.provisioned.len(),
                errors = report.errors.len(),
                "simulator pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("simulator pass failed: {e}"),
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep(poll) => {}
        }
    }
    simulator.shutdown();
    Ok(())
}

/// Logs and reports a failure concerning the Cluster `key`; the pass goes on.
fn report_in_cluster(report: &mut Report, key: &str, result: Result<(), SimulatorError>) {
    if let Err(SimulatorError::Interrupted { .. }) = result {
        tracing::debug!(cluster = %key, "paused or moved during the pass");
        return;
    }
    if let Err(e) = result {
        tracing::warn!(cluster = %key, "{e}");
        report.errors.push(SimulatorError::InCluster {
            cluster: key.to_string(),
            source: Box::new(e),
        });
    }
}

/// Whether `spec.paused` is set (as `clusterctl move` sets it).
fn is_paused(cluster: &Value) -> bool {
    cluster.pointer("/spec/paused") == Some(&Value::Bool(true))
}
