//! I/O: what a move takes along. The types are the CRDs labelled `clusterctl.cluster.x-k8s.io`
//! (at their storage version) plus Secrets and ConfigMaps, listed in the cluster's namespace;
//! the graph and the sequence are computed by the pure `graph` and `sequence`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::graph::ObjectGraph;
use super::sequence::{MoveSequence, move_sequence};
use crate::apply::api::{ApiError, ClusterApi};
use crate::render::capi::CLUSTER_API;
use crate::render::kinds::{ObjectKey, str_at};

/// Label `clusterctl init` puts on every provider CRD.
pub const CLUSTERCTL_LABEL: &str = "clusterctl.cluster.x-k8s.io";
const CRD_API: &str = "apiextensions.k8s.io/v1";

/// A kind to move, at the version the source stores it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MoveType {
    pub api_version: String,
    pub kind: String,
}

/// The objects of one cluster that move, in sequence.
#[derive(Clone, Debug)]
pub struct Discovered {
    pub cluster: Value,
    pub objects: BTreeMap<ObjectKey, Value>,
    pub sequence: MoveSequence,
    pub types: Vec<MoveType>,
}

impl Discovered {
    pub fn machines(&self) -> Vec<Value> {
        self.objects
            .values()
            .filter(|o| o["kind"] == "Machine" && o["apiVersion"] == CLUSTER_API)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.sequence.groups.iter().map(Vec::len).sum()
    }

    /// The objects of each group, in creation order.
    pub fn groups(&self) -> impl Iterator<Item = Vec<&Value>> + '_ {
        self.sequence
            .groups
            .iter()
            .map(|g| g.iter().filter_map(|k| self.objects.get(k)).collect())
    }
}

/// The storage version of a CRD, as `group/version`.
fn storage_api_version(crd: &Value) -> Option<String> {
    let group = str_at(crd, "/spec/group")?;
    let version = crd
        .pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v["storage"] == true)?["name"]
        .as_str()?;
    Some(format!("{group}/{version}"))
}

/// The provider CRDs of a cluster (labelled as `clusterctl init` labels them).
pub async fn provider_crds(api: &impl ClusterApi) -> Result<Vec<Value>, ApiError> {
    api.list(
        CRD_API,
        "CustomResourceDefinition",
        None,
        Some(CLUSTERCTL_LABEL),
    )
    .await
}

/// The namespaced kinds a move considers.
pub fn move_types(crds: &[Value]) -> Vec<MoveType> {
    let mut types: Vec<MoveType> = crds
        .iter()
        // clusterctl's own inventory never moves.
        .filter(|crd| str_at(crd, "/spec/group") != Some(CLUSTERCTL_LABEL))
        .filter(|crd| str_at(crd, "/spec/scope") == Some("Namespaced"))
        .filter_map(|crd| {
            Some(MoveType {
                api_version: storage_api_version(crd)?,
                kind: str_at(crd, "/spec/names/kind")?.to_string(),
            })
        })
        .collect();
    for kind in ["Secret", "ConfigMap"] {
        types.push(MoveType {
            api_version: "v1".into(),
            kind: kind.into(),
        });
    }
    types.sort();
    types
}

/// Everything that moves with Cluster `name` (in namespace `name`), or `None` when the
/// Cluster is not there.
pub async fn discover(api: &impl ClusterApi, name: &str) -> Result<Option<Discovered>, ApiError> {
    let Some(cluster) = api.get(&crate::render::capi::cluster_ref(name)).await? else {
        return Ok(None);
    };
    let types = move_types(&provider_crds(api).await?);
    // All at once: on an API server that has not listed a kind before, the first list waits
    // for its watch cache, and those waits should overlap rather than add up.
    let lists = types
        .iter()
        .map(|t| api.list(&t.api_version, &t.kind, Some(name), None));
    let listed: Vec<Value> = futures::future::try_join_all(lists)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let graph = ObjectGraph::build(&listed);
    let cluster_uid = cluster
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let moving: BTreeSet<ObjectKey> = graph
        .nodes
        .values()
        .filter(|n| n.moves())
        .filter(|n| n.tenants.contains(&cluster_uid) || (n.tenants.is_empty() && n.force_move))
        .map(|n| n.key.clone())
        .collect();
    let ours = |key: &ObjectKey| moving.contains(key);
    let mut sequence = move_sequence(&graph);
    for group in &mut sequence.groups {
        group.retain(&ours);
    }
    sequence.groups.retain(|g| !g.is_empty());
    sequence.unplaceable.retain(|(key, _)| ours(key));
    let objects = listed
        .into_iter()
        .map(|o| (ObjectKey::of(&o), o))
        .filter(|(k, _)| ours(k))
        .collect();
    Ok(Some(Discovered {
        cluster,
        objects,
        sequence,
        types,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(group: &str, kind: &str, scope: &str, versions: &[(&str, bool)]) -> Value {
        let versions: Vec<Value> = versions
            .iter()
            .map(|(v, storage)| json!({"name": v, "storage": storage}))
            .collect();
        json!({"spec": {"group": group, "scope": scope, "names": {"kind": kind}, "versions": versions}})
    }

    #[test]
    fn move_types_are_namespaced_provider_kinds_at_storage_version_plus_secrets_and_configmaps() {
        let crds = [
            crd(
                "cluster.x-k8s.io",
                "Cluster",
                "Namespaced",
                &[("v1beta1", false), ("v1beta2", true)],
            ),
            crd(
                "clusterctl.cluster.x-k8s.io",
                "Provider",
                "Namespaced",
                &[("v1alpha3", true)],
            ),
            crd(
                "infrastructure.cluster.x-k8s.io",
                "VSphereClusterIdentity",
                "Cluster",
                &[("v1beta2", true)],
            ),
        ];
        let names: Vec<String> = move_types(&crds)
            .iter()
            .map(|t| format!("{} {}", t.api_version, t.kind))
            .collect();
        assert_eq!(
            names,
            [
                "cluster.x-k8s.io/v1beta2 Cluster",
                "v1 ConfigMap",
                "v1 Secret"
            ]
        );
    }
}
