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
    #[error(transparent)]
    Move(#[from] crate::pivot::mover::MoveError),
    #[error(
        "the agent of {cluster} did not report the cluster Ready within {waited:?}: {detail}\n  help: the agent \
         renders from its git source ({source_url}); check that this revision is pushed there, and read its log \
         or `kubectl -n cairn-system get pivotplan {cluster} -o yaml` in the workload cluster"
    )]
    AgentNotReady {
        cluster: String,
        waited: Duration,
        detail: String,
        source_url: String,
    },
    #[error(
        "Cluster {cluster} is protected (annotation cairn.dev/protect: \"true\"); it left the repository but is \
         not deleted\n  help: remove the annotation from the live Cluster to allow its deletion, or put the cluster \
         back in the repository"
    )]
    Protected { cluster: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Provisioning,
    ControlPlaneInitialized,
    AgentInstalled,
    Pivoted,
    Converging,
    Ready,
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "Provisioning",
            Phase::ControlPlaneInitialized => "ControlPlaneInitialized",
            Phase::AgentInstalled => "AgentInstalled",
            Phase::Pivoted => "Pivoted",
            Phase::Converging => "Converging",
            Phase::Deleting => "Deleting",
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
    /// Exit right after this pivot step (`CAIRN_FAULT_AFTER`, a testing aid).
    pub fault_after: Option<crate::pivot::steps::Step>,
}

impl ApplyOptions {
    /// Options that report progress as log lines.
    pub fn new(prune: bool, timeout: Duration, revision: impl Into<String>) -> ApplyOptions {
        ApplyOptions {
            prune,
            timeout,
            revision: revision.into(),
            progress: super::progress::log_lines(),
            fault_after: None,
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

pub fn stage(bundle: &Bundle, name: StageName) -> &[Value] {
    bundle
        .stage(name)
        .map(|s: &Stage| s.objects.as_slice())
        .unwrap_or(&[])
}

pub(super) fn kubeconfig_secret(cluster: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": format!("{cluster}-kubeconfig"), "namespace": cluster}})
}

/// The live Cluster object named by the bundle.
pub fn capi_cluster(cluster: &str) -> Value {
    json!({"apiVersion": capi::CLUSTER_API, "kind": "Cluster",
           "metadata": {"name": cluster, "namespace": cluster}})
}

/// The error when the `<cluster>-kubeconfig` Secret a step needs is not there (any more).
pub(super) fn kubeconfig_gone(cluster: &str) -> ClusterError {
    ClusterError::Workload {
        namespace: cluster.to_string(),
        name: format!("{cluster}-kubeconfig"),
        reason: "the Secret disappeared".into(),
    }
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
pub async fn record_phase(
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

/// Hash of what an agent converges to (the workload and add-ons stages): the same for the
/// render `cairn apply` makes and the one the agent makes from git, whatever source URL the
/// pivot stage names.
pub fn desired_hash(bundle: &Bundle) -> String {
    let stages: Vec<&Stage> = bundle
        .stages
        .iter()
        .filter(|s| matches!(s.name, StageName::Workload | StageName::Addons))
        .collect();
    let text: String = stages
        .iter()
        .flat_map(|s| s.objects.iter())
        .map(|o| serde_json::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    crate::render::finalize::spec_hash(&Value::String(text))
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

pub fn report_stage(opts: &ApplyOptions, cluster: &str, stage: StageName, r: &StageReport) {
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

pub(super) fn one_group(objects: &[Value]) -> Vec<Group> {
    vec![Group {
        objects: objects.to_vec(),
        wait: false,
        create_only: false,
    }]
}

/// Keys of the bootstrap objects the workload stage also renders (the KubeadmControlPlane and
/// its machine template). The bootstrap stage only creates them: once they exist, the workload
/// stage owns them, or every run would scale the control plane down to one and back up.
pub fn handed_over(bundle: &Bundle) -> Vec<ObjectKey> {
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
pub fn bootstrap_groups(bundle: &Bundle) -> Vec<Group> {
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
    converge_capi(mgmt, bundle, opts, wrote, &mut report).await?;
    let workload = workload_api(mgmt, name)
        .await?
        .ok_or_else(|| kubeconfig_gone(name))?;
    apply_addons(&workload, bundle, opts, &mut report).await?;
    record_phase(mgmt, bundle, Phase::Ready, opts).await?;
    Ok(report)
}

pub(super) fn stage_options(opts: &ApplyOptions) -> StageOptions {
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
    let r = apply_stage(
        api,
        name,
        StageName::Bootstrap,
        &bootstrap_groups(bundle),
        stage_options(opts),
    )
    .await?;
    let wrote = r.written + r.deleted > 0;
    report_stage(opts, name, StageName::Bootstrap, &r);
    report.stages.push((StageName::Bootstrap, r));
    let record = record && wrote;
    if record {
        record_phase(api, bundle, Phase::Provisioning, opts).await?;
    }
    let signals = [capi_cluster(name), kubeconfig_secret(name)];
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
    let wrote = r.written + r.deleted > 0;
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

/// The bundle as it applies inside a pivoted workload cluster: there the pivot stage owns the
/// objects it shares with the bootstrap stage (the cluster's Namespace, which its Role needs),
/// so the bootstrap stage leaves them alone instead of fighting over their labels.
pub fn as_pivoted(bundle: &Bundle) -> Bundle {
    let pivot_keys: Vec<ObjectKey> = stage(bundle, StageName::Pivot)
        .iter()
        .map(ObjectKey::of)
        .collect();
    let mut pivoted = bundle.clone();
    for s in pivoted
        .stages
        .iter_mut()
        .filter(|s| s.name == StageName::Bootstrap)
    {
        s.objects
            .retain(|o| !pivot_keys.contains(&ObjectKey::of(o)));
    }
    pivoted
}

/// The plan of a stage whose cluster does not exist yet: everything is created.
fn all_created(
    stage_name: StageName,
    objects: &[Value],
    prune: bool,
) -> Vec<crate::diff::plan::ObjectChange> {
    let observed: Vec<crate::diff::plan::Observed> = objects
        .iter()
        .map(|o| crate::diff::plan::Observed {
            desired: o.clone(),
            dry_run: None,
            live: None,
        })
        .collect();
    crate::diff::plan::plan_stage(stage_name, &observed, &[], prune)
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
    // A pivoted cluster's CAPI objects live in the workload cluster (reached through the
    // kubeconfig kept in cairn-system); the others' in the management cluster.
    let pivoted = match bundle.pivot {
        true => super::pivoted::live_in_workload(mgmt, name)
            .await?
            .map(|(api, _)| api),
        false => None,
    };
    let in_mgmt = mgmt
        .get(&capi_cluster(name))
        .await
        .map_err(api_err)?
        .is_some();
    let (capi_api, workload, bundle) = match pivoted {
        Some(api) if !in_mgmt => (None, Some(api), &as_pivoted(bundle)),
        _ => (Some(mgmt), workload_api(mgmt, name).await?, bundle),
    };
    let shared = handed_over(bundle);
    for (stage_name, create_only) in [
        (StageName::Bootstrap, shared.as_slice()),
        (StageName::Workload, &[][..]),
    ] {
        let objects = stage(bundle, stage_name);
        let changes = match (capi_api, &workload) {
            (Some(api), _) => stage::plan(api, name, stage_name, objects, create_only, prune).await,
            (None, Some(api)) => {
                stage::plan(api, name, stage_name, objects, create_only, prune).await
            }
            (None, None) => Ok(all_created(stage_name, objects, prune)),
        }
        .map_err(api_err)?;
        plan.changes.extend(changes);
    }
    for stage_name in [StageName::Pivot, StageName::Addons] {
        let objects = stage(bundle, stage_name);
        let changes = match &workload {
            Some(api) => stage::plan(api, name, stage_name, objects, &[], prune)
                .await
                .map_err(api_err)?,
            // No workload cluster yet: everything will be created.
            None => all_created(stage_name, objects, prune),
        };
        plan.changes.extend(changes);
    }
    Ok(plan)
}
