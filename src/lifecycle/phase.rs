//! The phase of a cluster, the revision last applied and the bundle hash, recorded as
//! annotations on the live Cluster so that any process can pick up where another stopped.

use serde_json::{Value, json};

use super::{ApplyOptions, ClusterError};
use crate::apply::api::ClusterApi;
use crate::model::types::StageName;
use crate::render::capi::cluster_ref;
use crate::render::{Bundle, Stage};

pub const PHASE_ANNOTATION: &str = "cairn.dev/phase";
pub const REVISION_ANNOTATION: &str = "cairn.dev/revision";
pub const BUNDLE_HASH_ANNOTATION: &str = "cairn.dev/bundle-hash";

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
    let cluster = cluster_ref(&bundle.cluster);
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
