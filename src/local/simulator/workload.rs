//! The workload clusters: one real kube-apiserver per Cluster (started at its first
//! control-plane machine, or re-attached after a restart of the simulator), the Nodes that
//! its Machines register there, and their readiness (a Node is Ready only once a CNI runs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::SimulatorError;
use super::objects::{ident, is_deleting, s};
use super::pod::template_schedulable;
use super::schema::Server;
use super::status::{addresses, is_true, now};
use crate::local::{ApiServer, ApiServerOptions, Assets};

/// Annotations CAPI puts on the Nodes of its Machines.
pub const MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/machine";
pub const CLUSTER_NAME_ANNOTATION: &str = "cluster.x-k8s.io/cluster-name";
pub const CLUSTER_NAMESPACE_ANNOTATION: &str = "cluster.x-k8s.io/cluster-namespace";

enum Process {
    /// Started by this simulator.
    Owned(ApiServer),
    /// Left running by an earlier simulator (detached); known by its pids.
    Attached { pids: Vec<u32> },
}

/// A running workload API server.
pub struct Workload {
    pub server: Arc<Server>,
    pub kubeconfig: String,
    pub port: u16,
    pub dir: PathBuf,
    process: Process,
}

fn port_of(kubeconfig: &str) -> u16 {
    kubeconfig
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(0)
}

impl Workload {
    /// Starts etcd and kube-apiserver for `cluster` in `dir` (reusing its etcd data if any).
    pub async fn start(
        cluster: &str,
        dir: &Path,
        assets: &Assets,
        detach: bool,
    ) -> Result<Workload, SimulatorError> {
        let mut opts = ApiServerOptions::new(cluster, dir);
        opts.detach = detach;
        let apiserver = ApiServer::start(assets, opts).await.map_err(|source| {
            SimulatorError::WorkloadServer {
                cluster: cluster.to_string(),
                source: Box::new(source),
            }
        })?;
        let pids: Vec<String> = apiserver.pids().iter().map(u32::to_string).collect();
        let pids_file = dir.join("pids");
        std::fs::write(&pids_file, pids.join(" ")).map_err(|source| SimulatorError::Io {
            step: "record the workload server's pids",
            path: pids_file,
            source,
        })?;
        let client = apiserver
            .client()
            .await
            .map_err(|source| SimulatorError::Connect {
                server: format!("the workload server of {cluster}"),
                source: Box::new(source),
            })?;
        Ok(Workload {
            server: Arc::new(Server::new(
                format!("the workload server of {cluster}"),
                client,
            )),
            kubeconfig: apiserver.kubeconfig.clone(),
            port: apiserver.port,
            dir: dir.to_path_buf(),
            process: Process::Owned(apiserver),
        })
    }

    /// The server an earlier simulator left running in `dir`, if it still answers.
    pub async fn attach(cluster: &str, dir: &Path) -> Option<Workload> {
        let kubeconfig_path = dir.join("kubeconfig");
        let kubeconfig = std::fs::read_to_string(&kubeconfig_path).ok()?;
        let pids: Vec<u32> = std::fs::read_to_string(dir.join("pids"))
            .ok()?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || !pids.iter().all(|p| is_ours(*p, dir)) {
            return None;
        }
        let client = crate::kube_client::client_from_kubeconfig(&kubeconfig)
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(5), crate::kube_client::ready(&client))
            .await
            .ok()?
            .ok()?;
        Some(Workload {
            server: Arc::new(Server::new(
                format!("the workload server of {cluster}"),
                client,
            )),
            port: port_of(&kubeconfig),
            kubeconfig,
            dir: dir.to_path_buf(),
            process: Process::Attached { pids },
        })
    }

    /// Process ids of its etcd and kube-apiserver.
    pub fn pids(&self) -> Vec<u32> {
        match &self.process {
            Process::Owned(server) => server.pids(),
            Process::Attached { pids } => pids.clone(),
        }
    }

    /// Stops both processes.
    pub fn stop(self) {
        match self.process {
            Process::Owned(mut server) => server.stop(),
            Process::Attached { pids } => {
                for pid in pids {
                    // Only the processes this state directory started, by their id.
                    if is_ours(pid, &self.dir) {
                        // SAFETY: kill(2) on a pid we verified belongs to our server.
                        unsafe {
                            libc::kill(pid as i32, libc::SIGKILL);
                        }
                    }
                }
            }
        }
    }

    /// Leaves the processes running (they were started detached).
    pub fn release(self) {
        if let Process::Owned(server) = self.process {
            server.release();
        }
    }
}

/// Whether `pid` is a live etcd or kube-apiserver of the server in `dir`.
fn is_ours(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()))
        .unwrap_or(false)
}

/// What a Node looks like for a machine.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub provider_id: &'a str,
    pub version: &'a str,
    pub control_plane: bool,
}

impl<'a> NodeSpec<'a> {
    /// The Node of `machine`, a machine of the Cluster `namespace/cluster`.
    pub fn of_machine(
        machine: &'a Value,
        cluster: &'a str,
        namespace: &'a str,
        control_plane: bool,
    ) -> NodeSpec<'a> {
        NodeSpec {
            name: s(machine, "/metadata/name"),
            cluster,
            namespace,
            provider_id: s(machine, "/spec/providerID"),
            version: s(machine, "/spec/version"),
            control_plane,
        }
    }
}

/// Registers the Node of a machine (as its kubelet would), not Ready until a CNI runs on it
/// ([`sync_readiness`]).
pub async fn register_node(server: &Server, node: &NodeSpec<'_>) -> Result<(), SimulatorError> {
    let mut labels = json!({
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    });
    if node.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = "".into();
    }
    let mut obj = ident("v1", "Node", "", node.name);
    obj["metadata"]["labels"] = labels;
    obj["metadata"]["annotations"] = json!({
        MACHINE_ANNOTATION: node.name,
        CLUSTER_NAME_ANNOTATION: node.cluster,
        CLUSTER_NAMESPACE_ANNOTATION: node.namespace,
    });
    obj["spec"] = json!({});
    if !node.provider_id.is_empty() {
        obj["spec"]["providerID"] = json!(node.provider_id);
    }
    // kubeadm taints control-plane nodes: only pods that tolerate it run there.
    if node.control_plane {
        obj["spec"]["taints"] =
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    }
    let live = server.apply(&obj, "register the Node").await?;
    let status = json!({
        "conditions": [ready_condition(false)],
        "addresses": addresses(node.name),
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.8.0",
            "osImage": "cairn simulated node", "containerRuntimeVersion": "containerd://2.1.0",
            "kubeletVersion": node.version, "kubeProxyVersion": node.version,
            "operatingSystem": "linux", "architecture": "amd64",
        },
    });
    if live.pointer("/status/conditions").is_none() {
        server
            .set_status(&live, status, "set the Node status")
            .await?;
    }
    Ok(())
}

/// The kubelet's Ready condition: without a CNI the container runtime reports its network
/// not ready, and so the Node is not.
fn ready_condition(ready: bool) -> Value {
    let now = now();
    let (status, reason, message) = match ready {
        true => (
            "True",
            "KubeletReady",
            "kubelet is posting ready status (simulated)",
        ),
        false => (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        ),
    };
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": now, "lastTransitionTime": now})
}

/// Whether `daemonset` installs a CNI: it mounts the host's CNI configuration directory, as
/// Calico, Cilium and Flannel do to write their config there.
fn is_cni(daemonset: &Value) -> bool {
    !is_deleting(daemonset)
        && daemonset
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|volumes| {
                volumes
                    .iter()
                    .any(|v| s(v, "/hostPath/path") == "/etc/cni/net.d")
            })
}

/// What the kubelets and the node lifecycle controller do in a workload server: a Node is
/// Ready exactly when a CNI DaemonSet's pod can run on it, and carries the not-ready taint
/// while it is not.
pub async fn sync_readiness(server: &Server) -> Result<(), SimulatorError> {
    let cnis: Vec<Value> = server
        .list("apps/v1", "DaemonSet", None, None)
        .await?
        .into_iter()
        .filter(is_cni)
        .collect();
    for node in server.list("v1", "Node", None, None).await? {
        let ready = cnis
            .iter()
            .any(|ds| template_schedulable(ds, std::slice::from_ref(&node)).is_ok());
        if is_true(&node, "Ready") != ready {
            let status = json!({"conditions": [ready_condition(ready)]});
            server
                .set_status(&node, status, "set the Node's readiness")
                .await?;
        }
        let taints: Vec<Value> = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tainted = taints.iter().any(|t| t["key"] == NOT_READY_TAINT);
        if tainted == ready {
            let mut kept: Vec<Value> = taints
                .into_iter()
                .filter(|t| t["key"] != NOT_READY_TAINT)
                .collect();
            if !ready {
                kept.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}));
            }
            server
                .merge_patch(
                    &node,
                    &json!({"spec": {"taints": kept}}),
                    "set the not-ready taint",
                )
                .await?;
        }
    }
    Ok(())
}

/// What the API server's admission taints a new Node with until it is Ready.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// The Nodes of `cluster`'s machines in its workload server.
pub async fn nodes_of(
    server: &Server,
    cluster: &str,
    namespace: &str,
) -> Result<Vec<Value>, SimulatorError> {
    Ok(server
        .list("v1", "Node", None, None)
        .await?
        .into_iter()
        .filter(|n| {
            s(
                n,
                &format!("/metadata/annotations/{}", esc(CLUSTER_NAME_ANNOTATION)),
            ) == cluster
                && s(
                    n,
                    &format!(
                        "/metadata/annotations/{}",
                        esc(CLUSTER_NAMESPACE_ANNOTATION)
                    ),
                ) == namespace
        })
        .collect())
}

/// Deletes the Node named `node` (if any).
pub async fn delete_node(server: &Server, node: &str) -> Result<bool, SimulatorError> {
    server
        .delete(&ident("v1", "Node", "", node), "delete the Node")
        .await
}

/// A JSON pointer segment for a key containing `/` or `~`.
pub fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The machine a Node belongs to.
pub fn machine_of(node: &Value) -> &str {
    s(
        node,
        &format!("/metadata/annotations/{}", esc(MACHINE_ANNOTATION)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_read_from_the_kubeconfig() {
        assert_eq!(port_of("server: https://127.0.0.1:40123\n"), 40123);
        assert_eq!(port_of("nothing"), 0);
    }

    #[test]
    fn machine_annotation_is_found() {
        let node = json!({"metadata": {"annotations": {MACHINE_ANNOTATION: "m-1"}}});
        assert_eq!(machine_of(&node), "m-1");
    }
}
