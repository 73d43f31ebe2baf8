//! A cluster that pivots (DESIGN.md §3): bootstrap in the management cluster, wait for the first
//! control-plane node, install the agent in the workload cluster, move the CAPI objects there,
//! then wait until the agent reports the cluster Ready. Each run starts from where the cluster
//! is: a pivot that a killed run left half-done is finished by the mover's journal, and a
//! pivoted cluster only gets its pivot stage refreshed (its agent does the rest from git).

use std::time::{Duration, Instant};

use serde_json::json;

use super::cluster::{apply_bootstrap_layers, provision, report_stage, stage_options};
use super::phase::{desired_hash, record_phase};
use super::record::{AgentStatus, read_status};
use super::workload::{kubeconfig_gone, reach_workload, refresh_kept_kubeconfig, wait_nodes_ready};
use super::{ApplyOptions, ClusterError, ClusterReport, Phase};
use crate::apply::api::{ApiError, ClusterApi, KubeClusterApi};
use crate::apply::groups::{one_group, stage};
use crate::apply::stage::apply_stage;
use crate::apply::wait::wait_healthy;
use crate::model::types::StageName;
use crate::pivot::mover::{MoveOptions, Mover};
use crate::pivot::steps::{Direction, Journal};
use crate::render::Bundle;
use crate::render::capi::cluster_ref;
use crate::render::finalize::CLUSTER_LABEL;
use crate::render::pivot::{AGENT_NAME, AGENT_NAMESPACE, credentials_secret};

fn api_err(step: &'static str) -> impl FnOnce(ApiError) -> ClusterError {
    move |source| ClusterError::Api { step, source }
}

pub fn move_options(opts: &ApplyOptions) -> MoveOptions {
    MoveOptions {
        timeout: opts.timeout,
        progress: opts.progress.clone(),
        after_step: opts.after_pivot_step.clone(),
    }
}

/// Applies a pivoting cluster from wherever it is to Ready.
pub async fn apply_pivoted(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
) -> Result<ClusterReport, ClusterError> {
    let name = bundle.cluster.as_str();
    let mut report = ClusterReport::default();
    let stub = cluster_ref(name);
    let in_mgmt = mgmt.get(&stub).await.map_err(api_err("read the Cluster"))?;
    let moving = match &in_mgmt {
        Some(c) => Journal::of(c).ok().flatten().is_some(),
        None => false,
    };
    let pivoted = in_mgmt.is_none() && reach_workload(mgmt, name).await?.is_some();

    if !pivoted && !moving {
        provision(mgmt, bundle, opts, true, &mut report).await?;
    }
    let workload = reach_workload(mgmt, name)
        .await?
        .ok_or_else(|| kubeconfig_gone(name))?;
    if !pivoted && !moving {
        // What the first node needs before it is Ready, then the node itself: the CAPI
        // controllers that move in next can only finish the cluster from a working node.
        apply_bootstrap_layers(&workload, bundle, opts, &mut report).await?;
        wait_nodes_ready(&workload, opts.timeout)
            .await
            .map_err(|source| ClusterError::Wait {
                step: "waiting for the first nodes to be Ready",
                source,
            })?;
    }
    if pivoted && refresh_kept_kubeconfig(mgmt, &workload, name).await? {
        (opts.progress)(
            name,
            "refreshed the kept kubeconfig from the workload cluster's own",
        );
    }
    copy_credentials(mgmt, &workload, bundle, opts).await?;
    let wrote = install_agent(&workload, bundle, opts, &mut report).await?;
    if wrote && !pivoted {
        record_phase(mgmt, bundle, Phase::AgentInstalled, opts).await?;
    }
    let mover = Mover {
        source: mgmt,
        target: &workload,
        direction: Direction::Forward,
        cluster: name,
        opts: move_options(opts),
    };
    let moved = mover.run().await?;
    if !moved.already_moved {
        (opts.progress)(
            name,
            &format!(
                "pivoted: {} objects moved in {:.1}s{}",
                moved.created,
                moved.seconds,
                moved
                    .resumed_after
                    .as_ref()
                    .map(|step| format!(" (resumed after step {step})"))
                    .unwrap_or_default()
            ),
        );
        record_phase(&workload, bundle, Phase::Pivoted, opts).await?;
    }
    wait_agent_ready(&workload, bundle, opts).await?;
    Ok(report)
}

/// Copies the agent's git credentials Secret from `cairn-system` of the management cluster
/// into the workload cluster's, on every pass (so a rotated credential follows). Its data is
/// never read into anything printed. Missing in the management cluster: said, and the agent
/// fetches without credentials (its volume is optional), as the controller itself would.
async fn copy_credentials(
    mgmt: &KubeClusterApi,
    workload: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let pivot_stage = stage(bundle, StageName::Pivot);
    let Some(name) = credentials_secret(pivot_stage) else {
        return Ok(());
    };
    let stub = json!({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": name, "namespace": AGENT_NAMESPACE}});
    let Some(live) = mgmt
        .get(&stub)
        .await
        .map_err(api_err("read the git credentials Secret"))?
    else {
        (opts.progress)(
            &bundle.cluster,
            &format!(
                "no Secret {AGENT_NAMESPACE}/{name} (fleet.yaml spec.source.credentialsSecret) \
                 in the management cluster: the agent fetches without credentials"
            ),
        );
        return Ok(());
    };
    let mut copy = stub;
    copy["type"] = live["type"].clone();
    copy["data"] = live["data"].clone();
    copy["metadata"]["labels"] = json!({CLUSTER_LABEL: bundle.cluster});
    if copy["type"].is_null() {
        copy["type"] = json!("Opaque");
    }
    // Before the agent's Deployment, so its first pod mounts it: its namespace first, as the
    // pivot stage renders it (the stage then finds it unchanged).
    let namespace = pivot_stage
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == AGENT_NAMESPACE);
    if let Some(namespace) = namespace {
        workload.apply(namespace).await.map_err(api_err(
            "create the cairn-system namespace in the workload cluster",
        ))?;
    }
    workload.apply(&copy).await.map_err(api_err(
        "copy the git credentials Secret into the workload cluster",
    ))?;
    Ok(())
}

/// The pivot stage into the workload cluster, then the wait
/// until the agent runs. Returns whether anything was written.
async fn install_agent(
    workload: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    report: &mut ClusterReport,
) -> Result<bool, ClusterError> {
    let name = bundle.cluster.as_str();
    let r = apply_stage(
        workload,
        name,
        StageName::Pivot,
        &one_group(stage(bundle, StageName::Pivot)),
        stage_options(opts),
    )
    .await?;
    let wrote = r.has_changes();
    report_stage(opts, name, StageName::Pivot, &r);
    report.stages.push((StageName::Pivot, r));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": AGENT_NAME, "namespace": AGENT_NAMESPACE}});
    wait_healthy(workload, &[deployment], opts.timeout)
        .await
        .map_err(|source| ClusterError::Wait {
            step: "waiting for the agent to run",
            source,
        })?;
    (opts.progress)(name, "agent running");
    Ok(wrote)
}

/// Polls the agent's record until it reports Ready for exactly this render.
async fn wait_agent_ready(
    workload: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let name = bundle.cluster.as_str();
    let want = desired_hash(bundle);
    let start = Instant::now();
    (opts.progress)(name, "waiting for the agent to converge the cluster");
    let mut last: Option<AgentStatus> = None;
    loop {
        match read_status(workload, name).await {
            Ok(Some(status)) => {
                if status.phase == Phase::Ready.as_str() && status.desired_hash == want {
                    (opts.progress)(name, "Ready (reported by the agent)");
                    return Ok(());
                }
                last = Some(status);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("cluster {name}: reading the agent status: {e}"),
        }
        if start.elapsed() > opts.timeout {
            let detail = match &last {
                None => "it reported nothing".to_string(),
                Some(s) => s.summary(&want),
            };
            return Err(ClusterError::AgentNotReady {
                cluster: name.to_string(),
                waited: opts.timeout,
                detail,
                source_url: last.map(|s| s.source_url).unwrap_or_default(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
