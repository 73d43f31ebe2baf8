//! Endings: a deleted Cluster is torn down (machines, Nodes, the workload API server, the
//! agent), a Cluster gone from every server has its processes stopped, and, standing in for
//! kube-controller-manager's garbage collector, objects whose owners are all gone are deleted.

use std::collections::HashSet;

use super::cluster::CLUSTER_FINALIZER;
use super::objects::{
    BOOTSTRAP_API, CAPI, CLUSTER_NAME_LABEL, KCP_API, group_of, ident, is_deleting, object_ref,
    owner_refs, s,
};
use super::schema::Server;
use super::{ClusterState, Ctx, Report, SimulatorError, machines};

/// The annotation `clusterctl move` puts on what it deletes from the source after copying it.
pub const DELETE_FOR_MOVE: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";

/// A Cluster with a deletionTimestamp: delete its machines (and their Nodes), MachineSets,
/// MachineDeployments, control plane and infrastructure cluster, stop its agent and workload
/// server, then drop the finalizer. A Cluster deleted by a move keeps everything.
pub async fn delete_cluster(ctx: &mut Ctx<'_>) -> Result<(), SimulatorError> {
    let server = ctx.server.clone();
    let cluster = ctx.cluster.clone();
    let moving = cluster
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DELETE_FOR_MOVE))
        .is_some();
    if !moving {
        let namespace = ctx.namespace.clone();
        let cluster_name = ctx.name.clone();
        for machine in server
            .cluster_objects("Machine", &namespace, &cluster_name)
            .await?
        {
            machines::delete(ctx, &machine).await?;
        }
        for kind in ["MachineSet", "MachineDeployment"] {
            for obj in server
                .cluster_objects(kind, &namespace, &cluster_name)
                .await?
            {
                ctx.delete(&obj, "delete a MachineDeployment or MachineSet")
                    .await?;
            }
        }
        if let Some(cp_ref) = cluster.pointer("/spec/controlPlaneRef") {
            let cp = ident(KCP_API, s(cp_ref, "/kind"), &namespace, s(cp_ref, "/name"));
            ctx.delete(&cp, "delete the control plane").await?;
        }
        if let Some(infra_ref) = cluster.pointer("/spec/infrastructureRef") {
            let (_, infra) = server.resolve(infra_ref, &namespace).await?;
            ctx.delete(&infra, "delete the infrastructure cluster")
                .await?;
        }
    }
    // The finalizer goes before the server stops: a self-hosted Cluster lives in it.
    server.remove_finalizer(&cluster, CLUSTER_FINALIZER).await?;
    ctx.report.deleted.push(object_ref(&cluster));
    if !moving {
        stop(ctx.state, ctx.report);
    }
    Ok(())
}

/// Stops a cluster's agent and workload API server.
pub fn stop(state: &mut ClusterState, report: &mut Report) {
    if state.agent.stop() {
        report.agents_stopped.push(state.name.clone());
    }
    if let Some(workload) = state.workload.take() {
        workload.stop();
        tracing::info!(cluster = %state.name, "stopped the workload API server");
        report.servers_stopped.push(state.name.clone());
    }
}

/// The kinds whose owners the garbage collector knows: CAPI's, the kubeadm providers', the
/// infrastructure providers' (where served), and the Secrets CAPI labels.
const CORE_KINDS: [(&str, &str); 7] = [
    (CAPI, "Cluster"),
    (CAPI, "MachineDeployment"),
    (CAPI, "MachineSet"),
    (CAPI, "Machine"),
    (KCP_API, "KubeadmControlPlane"),
    (BOOTSTRAP_API, "KubeadmConfig"),
    (BOOTSTRAP_API, "KubeadmConfigTemplate"),
];
const INFRA_KINDS: [&str; 9] = [
    "DockerCluster",
    "DockerMachine",
    "DockerMachineTemplate",
    "VSphereCluster",
    "VSphereMachine",
    "VSphereMachineTemplate",
    "AWSCluster",
    "AWSMachine",
    "AWSMachineTemplate",
];
const INFRA_GROUP: &str = "infrastructure.cluster.x-k8s.io";

/// Deletes every object (of the kinds above) all of whose owners are of those kinds and gone,
/// checking each owner again right before deleting.
pub async fn collect_garbage(server: &Server, report: &mut Report) -> Result<(), SimulatorError> {
    let mut kinds: Vec<(String, String)> = CORE_KINDS
        .iter()
        .map(|(v, k)| (v.to_string(), k.to_string()))
        .collect();
    for kind in INFRA_KINDS {
        if let Ok(info) = server.kind(INFRA_GROUP, kind).await {
            kinds.push((info.api_version.clone(), kind.to_string()));
        }
    }
    let mut objects = Vec::new();
    for (api_version, kind) in &kinds {
        objects.extend(server.list(api_version, kind, None, None).await?);
    }
    objects.extend(
        server
            .list("v1", "Secret", None, Some(CLUSTER_NAME_LABEL))
            .await?,
    );
    let known: HashSet<(&str, &str)> = kinds
        .iter()
        .map(|(v, k)| (group_of(v), k.as_str()))
        .chain([("", "Secret")])
        .collect();
    let uids: HashSet<&str> = objects.iter().map(|o| s(o, "/metadata/uid")).collect();
    for obj in &objects {
        let refs = owner_refs(obj);
        let orphan = !refs.is_empty()
            && !is_deleting(obj)
            && refs.iter().all(|r| {
                known.contains(&(group_of(s(r, "/apiVersion")), s(r, "/kind")))
                    && !uids.contains(s(r, "/uid"))
            });
        if !orphan {
            continue;
        }
        // Confirm against the server: an owner may have been created since the lists.
        let mut alive = false;
        for r in refs {
            let owner = ident(
                s(r, "/apiVersion"),
                s(r, "/kind"),
                s(obj, "/metadata/namespace"),
                s(r, "/name"),
            );
            if server
                .fetch(&owner)
                .await?
                .is_some_and(|o| s(&o, "/metadata/uid") == s(r, "/uid"))
            {
                alive = true;
                break;
            }
        }
        if !alive && server.delete(obj, "delete an orphan").await? {
            tracing::debug!("deleted the orphan {}", object_ref(obj));
            report.deleted.push(object_ref(obj));
        }
    }
    Ok(())
}
