//! A cluster's namespace in the management cluster is deleted with the cluster only when cairn
//! created it: a cluster named like a namespace that was already there (an application's, a
//! team's) must not take that namespace down with it. The record is an annotation written right
//! after the bootstrap stage created the namespace; a namespace that existed before never gets
//! it, and a run killed between the two leaves it unrecorded, so it is kept (the safe side).

use serde_json::{Value, json};

use super::ClusterError;
use crate::apply::api::ClusterApi;
use crate::render::kinds::annotation;

/// On a namespace cairn created for a cluster (the bootstrap stage, or a pivot that found it
/// missing in its target).
pub use crate::render::finalize::CREATED_NAMESPACE_ANNOTATION as CREATED_ANNOTATION;

pub fn namespace_ref(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// Whether the namespace `name` does not exist yet (so the bootstrap stage will create it).
pub async fn absent(api: &impl ClusterApi, name: &str) -> Result<bool, ClusterError> {
    let live = api
        .get(&namespace_ref(name))
        .await
        .map_err(|source| ClusterError::Api {
            step: "read the cluster's namespace",
            source,
        })?;
    Ok(live.is_none())
}

/// Records that cairn created the namespace `name`.
pub async fn record_created(api: &impl ClusterApi, name: &str) -> Result<(), ClusterError> {
    let patch = json!({"metadata": {"annotations": {CREATED_ANNOTATION: "true"}}});
    api.merge_patch(&namespace_ref(name), &patch)
        .await
        .map(|_| ())
        .map_err(|source| ClusterError::Api {
            step: "record that cairn created the namespace",
            source,
        })
}

/// Whether a live namespace carries cairn's record of creating it.
pub fn created_by_cairn(namespace: &Value) -> bool {
    annotation(namespace, CREATED_ANNOTATION) == Some("true")
}
