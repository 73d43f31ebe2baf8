//! One cluster through its phases (DESIGN.md §3) for clusters that do not pivot:
//! `Provisioning -> ControlPlaneInitialized -> Converging -> Ready`, each step waiting on the
//! real CAPI signals, and the phase recorded on the live Cluster so any run can pick it up.

use serde_json::Value;

use super::phase::record_phase;
use super::workload::{kubeconfig_gone, workload_api};
use super::{ApplyOptions, ClusterError, ClusterReport, Phase, namespace};
use crate::apply::api::{ClusterApi, KubeClusterApi};
use crate::apply::groups::{
    addon_groups, bootstrap_addon_groups, bootstrap_groups, one_group, stage,
};
use crate::apply::health::{Health, control_plane_initialized};
use crate::apply::stage::{StageOptions, StageReport, apply_part, apply_stage};
use crate::apply::wait::{wait_healthy, wait_until};
use crate::model::types::StageName;
use crate::render::Bundle;
use crate::render::capi::{cluster_ref, kubeconfig_secret};

pub fn report_stage(opts: &ApplyOptions, cluster: &str, stage: StageName, r: &StageReport) {
    let step = format!(
        "{} stage applied: {} written, {} unchanged, {} pruned, {} kept",
        stage.as_str(),
        r.written(),
        r.unchanged(),
        r.deleted(),
        r.orphaned.len()
    );
    (opts.progress)(cluster, &step);
}

/// Applies a cluster from wherever it is to Ready: those that pivot through the pivot (see
/// `pivoted`), the others from the management cluster.
pub async fn apply_cluster(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
) -> Result<ClusterReport, ClusterError> {
    if bundle.pivot {
        return super::pivoted::apply_pivoted(mgmt, bundle, opts).await;
    }
    let name = bundle.cluster.as_str();
    let mut report = ClusterReport::default();
    let wrote = provision(mgmt, bundle, opts, true, &mut report).await?;
    let workload = workload_api(mgmt, name)
        .await?
        .ok_or_else(|| kubeconfig_gone(name))?;
    apply_bootstrap_layers(&workload, bundle, opts, &mut report).await?;
    converge_capi(mgmt, bundle, opts, wrote, &mut report).await?;
    apply_addons(&workload, bundle, opts, &mut report).await?;
    record_phase(mgmt, bundle, Phase::Ready, opts).await?;
    Ok(report)
}

pub fn stage_options(opts: &ApplyOptions) -> StageOptions {
    StageOptions {
        prune: opts.prune,
        timeout: opts.timeout,
    }
}

/// The bootstrap stage, then the wait for the control plane (and its kubeconfig). Returns
/// whether the stage wrote anything; phases are recorded only then, so re-applying a
/// converged cluster neither writes nor looks as if it were provisioning again.
pub async fn provision(
    api: &impl ClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    record: bool,
    report: &mut ClusterReport,
) -> Result<bool, ClusterError> {
    let name = bundle.cluster.as_str();
    let creates_namespace = namespace::absent(api, name).await?;
    let r = apply_stage(
        api,
        name,
        StageName::Bootstrap,
        &bootstrap_groups(bundle),
        stage_options(opts),
    )
    .await?;
    if creates_namespace {
        namespace::record_created(api, name).await?;
    }
    let wrote = r.has_changes();
    report_stage(opts, name, StageName::Bootstrap, &r);
    report.stages.push((StageName::Bootstrap, r));
    let record = record && wrote;
    if record {
        record_phase(api, bundle, Phase::Provisioning, opts).await?;
    }
    let signals = [cluster_ref(name), kubeconfig_secret(name, name)];
    wait_until(api, &signals, opts.timeout, |live| {
        match live["kind"].as_str() {
            Some("Cluster") if !control_plane_initialized(live) => Health::InProgress(
                "control plane not initialized (status.initialization.controlPlaneInitialized)"
                    .into(),
            ),
            _ => Health::Ready,
        }
    })
    .await
    .map_err(|source| ClusterError::Wait {
        step: "waiting for the control plane",
        source,
    })?;
    (opts.progress)(name, "control plane initialized");
    if record {
        record_phase(api, bundle, Phase::ControlPlaneInitialized, opts).await?;
    }
    Ok(wrote)
}

/// The workload stage where the CAPI objects live, then the wait until the control plane and
/// every worker pool have rolled out.
pub async fn converge_capi(
    api: &impl ClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    provisioned: bool,
    report: &mut ClusterReport,
) -> Result<(), ClusterError> {
    let name = bundle.cluster.as_str();
    let workload_objects = stage(bundle, StageName::Workload);
    let r = apply_stage(
        api,
        name,
        StageName::Workload,
        &one_group(workload_objects),
        stage_options(opts),
    )
    .await?;
    let wrote = r.has_changes();
    report_stage(opts, name, StageName::Workload, &r);
    report.stages.push((StageName::Workload, r));
    if wrote || provisioned {
        record_phase(api, bundle, Phase::Converging, opts).await?;
    }
    let rollouts: Vec<Value> = workload_objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("KubeadmControlPlane" | "MachineDeployment")
            )
        })
        .cloned()
        .collect();
    wait_healthy(api, &rollouts, opts.timeout)
        .await
        .map_err(|source| ClusterError::Wait {
            step: "waiting for the machines to roll out",
            source,
        })
}

/// The `bootstrap: true` layers (CNI, cloud controller manager, CSI) into the workload cluster
/// as soon as its control plane answers: its Nodes cannot be Ready, nor its Machines get a
/// `nodeRef`, before they run (DESIGN.md §3). The whole add-on stage, later, finds them applied.
pub async fn apply_bootstrap_layers(
    workload: &impl ClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    report: &mut ClusterReport,
) -> Result<(), ClusterError> {
    let groups = bootstrap_addon_groups(stage(bundle, StageName::Addons));
    if groups.is_empty() {
        return Ok(());
    }
    let name = bundle.cluster.as_str();
    let r = apply_part(
        workload,
        name,
        StageName::Addons,
        &groups,
        stage_options(opts),
    )
    .await?;
    (opts.progress)(
        name,
        &format!(
            "bootstrap layers applied: {} written, {} unchanged",
            r.written(),
            r.unchanged()
        ),
    );
    report.stages.push((StageName::Addons, r));
    Ok(())
}

/// The add-ons, layer by layer, into the workload cluster.
pub async fn apply_addons(
    workload: &impl ClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    report: &mut ClusterReport,
) -> Result<(), ClusterError> {
    let name = bundle.cluster.as_str();
    let r = apply_stage(
        workload,
        name,
        StageName::Addons,
        &addon_groups(stage(bundle, StageName::Addons)),
        stage_options(opts),
    )
    .await?;
    report_stage(opts, name, StageName::Addons, &r);
    report.stages.push((StageName::Addons, r));
    Ok(())
}
