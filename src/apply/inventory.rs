//! What cairn applied, per cluster and stage, recorded in a ConfigMap in the target cluster, so
//! objects that left the repository can be found (and pruned with `--prune`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{ApiError, ClusterApi};
use crate::model::types::StageName;
use crate::render::finalize::impersonated_user;
use crate::render::kinds::{ObjectKey, api_group, str_at};

/// One recorded object; the apiVersion is kept so it can be deleted later.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    /// The user it was applied as, when not the applier itself (a layer's ServiceAccount):
    /// pruning it impersonates the same user, so a tenant's layer deletes only what it may.
    #[serde(
        rename = "impersonate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub impersonate: Option<String>,
}

impl Entry {
    pub fn of(obj: &Value) -> Entry {
        let s = |p: &str| str_at(obj, p).unwrap_or_default().to_string();
        Entry {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            impersonate: impersonated_user(obj),
        }
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: api_group(&self.api_version).to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// A stub object naming this entry, enough to get or delete it.
    pub fn stub(&self) -> Value {
        let mut meta = json!({"name": self.name});
        if !self.namespace.is_empty() {
            meta["namespace"] = json!(self.namespace);
        }
        json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": meta})
    }
}

/// Where the inventory of a stage lives: in the cluster's namespace on the management side, in
/// `kube-system` on the workload side (which every cluster has).
pub fn inventory_object(cluster: &str, stage: StageName, entries: &[Entry]) -> Value {
    let namespace = match stage {
        StageName::Bootstrap | StageName::Workload => cluster,
        StageName::Pivot | StageName::Addons => "kube-system",
    };
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("cairn-inventory-{cluster}-{}", stage.as_str()),
            "namespace": namespace,
            "labels": {"cairn.dev/cluster": cluster, "cairn.dev/inventory": stage.as_str()},
        },
        "data": {"objects": serde_json::to_string(entries).unwrap_or_default()},
    })
}

/// The recorded entries (empty when nothing was recorded yet).
pub async fn read(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
) -> Result<Vec<Entry>, ApiError> {
    let stub = inventory_object(cluster, stage, &[]);
    let Some(live) = api.get(&stub).await? else {
        return Ok(Vec::new());
    };
    let text = live
        .pointer("/data/objects")
        .and_then(Value::as_str)
        .unwrap_or("[]");
    Ok(serde_json::from_str(text).unwrap_or_default())
}

/// Records `entries`, writing only when they differ from what is recorded.
pub async fn write(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
    recorded: &[Entry],
    entries: &[Entry],
) -> Result<(), ApiError> {
    if recorded == entries {
        return Ok(());
    }
    api.apply(&inventory_object(cluster, stage, entries))
        .await
        .map(|_| ())
}
