//! One cluster through its phases (DESIGN.md §3) for clusters that do not pivot:
//! `Provisioning -> ControlPlaneInitialized -> Converging -> Ready`, each step waiting on the
//! real CAPI signals, and the phase recorded on the live Cluster so any run can pick it up.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::api::{ApiError, ClusterApi, KubeClusterApi};
use super::health::{Health, control_plane_initialized};
use super::progress::Progress;
use super::stage::{self, Group, StageError, StageOptions, StageReport, apply_stage};
use super::wait::{WaitError, wait_healthy, wait_until};
use crate::diff::key::ObjectKey;
use crate::diff::plan::Plan;
use crate::model::types::StageName;
use crate::render::finalize::{LAYER_LABEL, NO_WAIT_ANNOTATION};
use crate::render::{Bundle, Stage, capi};

pub const PHASE_ANNOTATION: &str = "cairn.dev/phase";
pub const REVISION_ANNOTATION: &str = "cairn.dev/revision";
pub const BUNDLE_HASH_ANNOTATION: &str = "cairn.dev/bundle-hash";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{step}: {source}")]
    Wait {
        step: &'static str,
        #[source]
        source: WaitError,
    },
    #[error("{step}: {source}")]
    Api {
        step: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("cannot reach the workload cluster through Secret {namespace}/{name}: {reason}")]
    Workload {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(
        "the cluster pivots (`pivot: true`); `cairn apply` does not pivot yet\n  help: set `pivot: false` on the \
         cluster to manage it from the management cluster"
    )]
    PivotNotSupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Provisioning,
    ControlPlaneInitialized,
    Converging,
    Ready,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "Provisioning",
            Phase::ControlPlaneInitialized => "ControlPlaneInitialized",
            Phase::Converging => "Converging",
            Phase::Ready => "Ready",
        }
    }
}

#[derive(Clone)]
pub struct ApplyOptions {
    pub prune: bool,
    pub timeout: Duration,
    /// The git revision being applied, recorded on the Cluster.
    pub revision: String,
    /// Where each step is reported.
    pub progress: Progress,
}

impl ApplyOptions {
    /// Options that report progress as log lines.
    pub fn new(prune: bool, timeout: Duration, revision: impl Into<String>) -> ApplyOptions {
        ApplyOptions {
            prune,
            timeout,
            revision: revision.into(),
            progress: super::progress::log_lines(),
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("prune", &self.prune)
            .field("timeout", &self.timeout)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// What applying one cluster did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClusterReport {
    pub stages: Vec<(StageName, StageReport)>,
}

impl ClusterReport {
    pub fn written(&self) -> usize {
        self.stages.iter().map(|(_, r)| r.written + r.deleted).sum()
    }
}

fn stage(bundle: &Bundle, name: StageName) -> &[Value] {
    bundle
        .stage(name)
        .map(|s: &Stage| s.objects.as_slice())
        .unwrap_or(&[])
}

fn kubeconfig_secret(cluster: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": format!("{cluster}-kubeconfig"), "namespace": cluster}})
}

/// The live Cluster object named by the bundle.
fn capi_cluster(cluster: &str) -> Value {
    json!({"apiVersion": capi::CLUSTER_API, "kind": "Cluster",
           "metadata": {"name": cluster, "namespace": cluster}})
}

/// A client for the workload cluster, from the `<cluster>-kubeconfig` Secret CAPI writes.
pub async fn workload_api(
    mgmt: &impl ClusterApi,
    cluster: &str,
) -> Result<Option<KubeClusterApi>, ClusterError> {
    let secret = kubeconfig_secret(cluster);
    let unreachable = |reason: String| ClusterError::Workload {
        namespace: cluster.to_string(),
        name: format!("{cluster}-kubeconfig"),
        reason,
    };
    let Some(live) = mgmt
        .get(&secret)
        .await
        .map_err(|source| ClusterError::Api {
            step: "read kubeconfig",
            source,
        })?
    else {
        return Ok(None);
    };
    let encoded = live
        .pointer("/data/value")
        .and_then(Value::as_str)
        .ok_or_else(|| unreachable("no `value` key".into()))?;
    let yaml = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| unreachable(format!("`value` is not base64: {e}")))?;
    let yaml = String::from_utf8(yaml).map_err(|_| unreachable("`value` is not UTF-8".into()))?;
    let client = crate::kube_client::client_from_kubeconfig(&yaml)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(Some(KubeClusterApi::new(client, false)))
}

/// Records phase, revision and bundle hash on the live Cluster.
async fn record_phase(
    mgmt: &impl ClusterApi,
    bundle: &Bundle,
    phase: Phase,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let patch = json!({"metadata": {"annotations": {
        PHASE_ANNOTATION: phase.as_str(),
        REVISION_ANNOTATION: opts.revision,
        BUNDLE_HASH_ANNOTATION: bundle_hash(bundle),
    }}});
    let cluster = capi_cluster(&bundle.cluster);
    let current = mgmt
        .get(&cluster)
        .await
        .map_err(|source| ClusterError::Api {
            step: "record phase",
            source,
        })?;
    let annotations = current
        .as_ref()
        .and_then(|c| c.pointer("/metadata/annotations"));
    if annotations.is_some_and(|a| {
        patch["metadata"]["annotations"]
            .as_object()
            .is_some_and(|want| want.iter().all(|(k, v)| a.get(k) == Some(v)))
    }) {
        return Ok(());
    }
    mgmt.merge_patch(&cluster, &patch)
        .await
        .map(|_| ())
        .map_err(|source| ClusterError::Api {
            step: "record phase",
            source,
        })
}

/// SHA-256 (16 hex digits) of the bundle as rendered.
pub fn bundle_hash(bundle: &Bundle) -> String {
    let text = crate::render::output::bundles_stream(std::slice::from_ref(bundle));
    crate::render::finalize::spec_hash(&Value::String(text))
}

/// Add-on objects grouped by layer, in order; a layer waits unless marked `wait: false`.
fn addon_groups(objects: &[Value]) -> Vec<Group> {
    let mut groups: Vec<(String, Group)> = Vec::new();
    for obj in objects {
        let layer = obj
            .pointer(&format!(
                "/metadata/labels/{}",
                LAYER_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let wait = obj
            .pointer(&format!(
                "/metadata/annotations/{}",
                NO_WAIT_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            != Some("false");
        match groups.last_mut() {
            Some((name, group)) if *name == layer => group.objects.push(obj.clone()),
            _ => groups.push((
                layer,
                Group {
                    objects: vec![obj.clone()],
                    wait,
                    create_only: false,
                },
            )),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

fn report_stage(opts: &ApplyOptions, cluster: &str, stage: StageName, r: &StageReport) {
    let step = format!(
        "{} stage applied: {} written, {} unchanged, {} pruned, {} kept",
        stage.as_str(),
        r.written,
        r.unchanged,
        r.deleted,
        r.orphaned.len()
    );
    (opts.progress)(cluster, &step);
}

fn one_group(objects: &[Value]) -> Vec<Group> {
    vec![Group {
        objects: objects.to_vec(),
        wait: false,
        create_only: false,
    }]
}

/// Keys of the bootstrap objects the workload stage also renders (the KubeadmControlPlane and
/// its machine template). The bootstrap stage only creates them: once they exist, the workload
/// stage owns them, or every run would scale the control plane down to one and back up.
fn handed_over(bundle: &Bundle) -> Vec<ObjectKey> {
    let workload: Vec<ObjectKey> = stage(bundle, StageName::Workload)
        .iter()
        .map(ObjectKey::of)
        .collect();
    stage(bundle, StageName::Bootstrap)
        .iter()
        .map(ObjectKey::of)
        .filter(|k| workload.contains(k))
        .collect()
}

/// The bootstrap stage as groups: what it alone owns, then what it hands over (create only).
fn bootstrap_groups(bundle: &Bundle) -> Vec<Group> {
    let shared = handed_over(bundle);
    let (handed, owned): (Vec<Value>, Vec<Value>) = stage(bundle, StageName::Bootstrap)
        .iter()
        .cloned()
        .partition(|o| shared.contains(&ObjectKey::of(o)));
    vec![
        Group {
            objects: owned,
            wait: false,
            create_only: false,
        },
        Group {
            objects: handed,
            wait: false,
            create_only: true,
        },
    ]
}

/// Applies a cluster that stays managed from the management cluster, from wherever it is to Ready.
pub async fn apply_cluster(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
) -> Result<ClusterReport, ClusterError> {
    if bundle.pivot {
        return Err(ClusterError::PivotNotSupported);
    }
    let name = bundle.cluster.as_str();
    let stage_opts = StageOptions {
        prune: opts.prune,
        timeout: opts.timeout,
    };
    let mut report = ClusterReport::default();

    let r = apply_stage(
        mgmt,
        name,
        StageName::Bootstrap,
        &bootstrap_groups(bundle),
        stage_opts,
    )
    .await?;
    // Intermediate phases are recorded only when this run changed something: re-applying a
    // converged cluster must neither write nor make it look as if it were provisioning again.
    let bootstrap_wrote = r.written + r.deleted > 0;
    report_stage(opts, name, StageName::Bootstrap, &r);
    report.stages.push((StageName::Bootstrap, r));
    if bootstrap_wrote {
        record_phase(mgmt, bundle, Phase::Provisioning, opts).await?;
    }

    let signals = [capi_cluster(name), kubeconfig_secret(name)];
    wait_until(mgmt, &signals, opts.timeout, |live| {
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
    (opts.progress)(
        name,
        "control plane initialized; applying the workload stage",
    );
    if bootstrap_wrote {
        record_phase(mgmt, bundle, Phase::ControlPlaneInitialized, opts).await?;
    }

    let workload_objects = stage(bundle, StageName::Workload);
    let r = apply_stage(
        mgmt,
        name,
        StageName::Workload,
        &one_group(workload_objects),
        stage_opts,
    )
    .await?;
    let workload_wrote = r.written + r.deleted > 0;
    report_stage(opts, name, StageName::Workload, &r);
    report.stages.push((StageName::Workload, r));
    if workload_wrote {
        record_phase(mgmt, bundle, Phase::Converging, opts).await?;
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
    wait_healthy(mgmt, &rollouts, opts.timeout)
        .await
        .map_err(|source| ClusterError::Wait {
            step: "waiting for the machines to roll out",
            source,
        })?;

    let workload = workload_api(mgmt, name)
        .await?
        .ok_or_else(|| ClusterError::Workload {
            namespace: name.to_string(),
            name: format!("{name}-kubeconfig"),
            reason: "the Secret disappeared".into(),
        })?;
    let r = apply_stage(
        &workload,
        name,
        StageName::Addons,
        &addon_groups(stage(bundle, StageName::Addons)),
        stage_opts,
    )
    .await?;
    report_stage(opts, name, StageName::Addons, &r);
    report.stages.push((StageName::Addons, r));
    record_phase(mgmt, bundle, Phase::Ready, opts).await?;
    Ok(report)
}

/// What applying a cluster would do (no writes): management-side stages against the
/// management cluster, add-ons against the workload cluster when it exists.
pub async fn diff_cluster(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    prune: bool,
) -> Result<Plan, ClusterError> {
    let name = bundle.cluster.as_str();
    let mut plan = Plan {
        cluster: name.to_string(),
        changes: Vec::new(),
    };
    let api_err = |source| ClusterError::Api {
        step: "diff",
        source,
    };
    let shared = handed_over(bundle);
    for (stage_name, create_only) in [
        (StageName::Bootstrap, shared.as_slice()),
        (StageName::Workload, &[][..]),
    ] {
        let changes = stage::plan(
            mgmt,
            name,
            stage_name,
            stage(bundle, stage_name),
            create_only,
            prune,
        )
        .await
        .map_err(api_err)?;
        plan.changes.extend(changes);
    }
    let workload = workload_api(mgmt, name).await?;
    for stage_name in [StageName::Pivot, StageName::Addons] {
        let objects = stage(bundle, stage_name);
        let changes = match &workload {
            Some(api) => stage::plan(api, name, stage_name, objects, &[], prune)
                .await
                .map_err(api_err)?,
            // No workload cluster yet: everything will be created.
            None => crate::diff::plan::plan_stage(
                stage_name,
                &objects
                    .iter()
                    .map(|o| crate::diff::plan::Observed {
                        desired: o.clone(),
                        dry_run: None,
                        live: None,
                    })
                    .collect::<Vec<_>>(),
                &[],
                prune,
            ),
        };
        plan.changes.extend(changes);
    }
    Ok(plan)
}
