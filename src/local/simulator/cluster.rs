//! The Cluster and its infrastructure cluster: what CAPI's cluster controller and the
//! infrastructure provider do (owner references, the finalizer, provisioning, the control-plane
//! endpoint, phase, conditions and counters), and the order of one cluster's reconciliation.

use serde_json::{Value, json};

use super::controlplane::{self, ControlPlane};
use super::machinedeployment::{self, Workers};
use super::machines::has_node;
use super::objects::{generation, is_deleting, name, s};
use super::status::{
    Counters, cond_if, conditions, not_deleting_nor_paused, provisioned_status,
    set_observed_generation,
};
use super::workload::{NodeSpec, delete_node, machine_of, nodes_of, register_node};
use super::{Ctx, SimulatorError, is_paused, providers, teardown};

/// The finalizer CAPI's cluster controller puts on every Cluster.
pub const CLUSTER_FINALIZER: &str = "cluster.cluster.x-k8s.io";

/// One Cluster, wherever it lives.
pub async fn reconcile(ctx: &mut Ctx<'_>) -> Result<(), SimulatorError> {
    let key = format!("{}/{}", ctx.namespace, ctx.name);
    if is_paused(&ctx.cluster) {
        ctx.report.paused.push(key);
        return Ok(());
    }
    let missing = providers::missing(&ctx.server, &ctx.cluster).await?;
    if !missing.is_empty() {
        ctx.report.without_providers.push(format!(
            "{key}@{}: {}",
            ctx.server.label,
            missing.join(", ")
        ));
        return Ok(());
    }
    if is_deleting(&ctx.cluster) {
        return teardown::delete_cluster(ctx).await;
    }
    ctx.report
        .clusters
        .push(format!("{key}@{}", ctx.server.label));
    ctx.cluster = ctx
        .server
        .ensure_finalizer(&ctx.cluster, CLUSTER_FINALIZER)
        .await?;

    let infra = reconcile_infra(ctx).await?;
    let mut machines = ctx
        .server
        .cluster_objects("Machine", &ctx.namespace, &ctx.name)
        .await?;
    let cp = controlplane::reconcile(ctx, &mut machines, infra.provisioned).await?;
    let workers = machinedeployment::reconcile(ctx, &mut machines).await?;
    sync_nodes(ctx, &machines).await?;
    write_status(ctx, &infra, cp.as_ref(), &workers).await
}

/// What the infrastructure cluster says.
pub struct Infra {
    pub provisioned: bool,
}

/// Provisions the infrastructure cluster (status as its contract wants it; the control-plane
/// endpoint of the workload server when it has none) and copies the endpoint to the Cluster.
async fn reconcile_infra(ctx: &mut Ctx<'_>) -> Result<Infra, SimulatorError> {
    let server = ctx.server.clone();
    let Some(infra_ref) = ctx.cluster.pointer("/spec/infrastructureRef").cloned() else {
        return Ok(Infra { provisioned: true });
    };
    let (info, wanted) = server.resolve(&infra_ref, &ctx.namespace).await?;
    let infra = server.fetch_referenced(&ctx.cluster, &wanted).await?;
    let mut infra = server.ensure_owner(&infra, &ctx.cluster, true).await?;

    if let Some(workload) = &ctx.state.workload {
        if info.has(&["spec", "controlPlaneEndpoint"])
            && s(&infra, "/spec/controlPlaneEndpoint/host").is_empty()
        {
            let patch = json!({"spec": {"controlPlaneEndpoint": {
                "host": "127.0.0.1", "port": workload.port,
            }}});
            infra = server
                .merge_patch(&infra, &patch, "set the control-plane endpoint")
                .await?;
        }
    }
    let status = provisioned_status(&info, &infra);
    server
        .set_status(&infra, status, "provision the infrastructure cluster")
        .await?;

    let endpoint = infra.pointer("/spec/controlPlaneEndpoint").cloned();
    if let Some(endpoint) = endpoint.filter(|e| !s(e, "/host").is_empty()) {
        if s(&ctx.cluster, "/spec/controlPlaneEndpoint/host").is_empty() {
            let patch = json!({"spec": {"controlPlaneEndpoint": endpoint}});
            ctx.cluster = server
                .merge_patch(&ctx.cluster, &patch, "copy the control-plane endpoint")
                .await?;
        }
    }
    Ok(Infra { provisioned: true })
}

/// A Node for every machine that booted, none for machines that are gone.
async fn sync_nodes(ctx: &mut Ctx<'_>, machines: &[Value]) -> Result<(), SimulatorError> {
    let Some(workload) = &ctx.state.workload else {
        return Ok(());
    };
    let server = workload.server.clone();
    let nodes = nodes_of(&server, &ctx.name, &ctx.namespace).await?;
    for machine in machines.iter().filter(|m| has_node(m)) {
        if nodes.iter().any(|n| name(n) == name(machine)) {
            continue;
        }
        let control_plane = machine
            .pointer("/metadata/labels/cluster.x-k8s.io~1control-plane")
            .is_some();
        let node = NodeSpec::of_machine(machine, &ctx.name, &ctx.namespace, control_plane);
        register_node(&server, &node).await?;
        ctx.report.created.push(format!("Node/{}", name(machine)));
    }
    for node in &nodes {
        if !machines.iter().any(|m| name(m) == machine_of(node))
            && delete_node(&server, name(node)).await?
        {
            ctx.report.deleted.push(format!("Node/{}", name(node)));
        }
    }
    Ok(())
}

/// The replicas of the control plane or of the workers, as the Cluster status sums them up.
fn replicas_summary(desired: i64, counters: &Counters) -> Value {
    let mut summary = json!({ "desiredReplicas": desired });
    counters.write(&mut summary);
    summary
}

/// Phase, initialization, counters and conditions of the Cluster.
async fn write_status(
    ctx: &mut Ctx<'_>,
    infra: &Infra,
    cp: Option<&ControlPlane>,
    workers: &Workers,
) -> Result<(), SimulatorError> {
    let cluster = &ctx.cluster;
    let was_initialized =
        cluster.pointer("/status/initialization/controlPlaneInitialized") == Some(&json!(true));
    let initialized = was_initialized || cp.is_some_and(|c| c.initialized);
    let cp_available = cp.is_none_or(|c| c.available);
    let mut rollout = workers.rollout;
    if let Some(cp) = cp {
        rollout.add(cp.rollout);
    }
    let available =
        infra.provisioned && initialized && cp_available && workers.available && rollout.is_done();
    let mut conds = vec![
        cond_if(
            "InfrastructureReady",
            infra.provisioned,
            "Ready",
            "NotReady",
        ),
        cond_if(
            "ControlPlaneInitialized",
            initialized,
            "Initialized",
            "NotInitialized",
        ),
        cond_if(
            "ControlPlaneAvailable",
            initialized && cp_available,
            "Available",
            "NotAvailable",
        ),
        cond_if(
            "WorkersAvailable",
            workers.available,
            "Available",
            "NotAvailable",
        ),
        cond_if(
            "RemoteConnectionProbe",
            ctx.state.workload.is_some(),
            "ProbeSucceeded",
            "ProbeFailed",
        ),
        cond_if("Available", available, "Available", "NotAvailable"),
    ];
    conds.extend(rollout.conditions());
    conds.extend(not_deleting_nor_paused());
    let mut status = json!({
        "phase": if infra.provisioned { "Provisioned" } else { "Provisioning" },
        "initialization": {
            "infrastructureProvisioned": infra.provisioned,
            "controlPlaneInitialized": initialized,
        },
        "conditions": conditions(cluster.pointer("/status/conditions"), &conds, generation(cluster)),
        "workers": replicas_summary(workers.desired, &workers.counters),
    });
    set_observed_generation(&mut status, cluster);
    if let Some(cp) = cp {
        status["controlPlane"] = replicas_summary(cp.desired, &cp.counters);
    }
    ctx.cluster = ctx
        .server
        .set_status(&ctx.cluster, status, "set the Cluster status")
        .await?;
    Ok(())
}
