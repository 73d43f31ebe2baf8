//! What a CRD's schema allows, read from the server that serves it: the storage version of a
//! kind, and whether a field exists (so the simulator writes `status.ready` only to kinds under
//! the v1beta1 contract, `status.initialization.provisioned` only under v1beta2, and so on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::SimulatorError;
use crate::kube_client::DynamicApi;

/// The storage version and schema of one kind.
#[derive(Debug)]
pub struct KindInfo {
    pub api_version: String,
    schema: Value,
}

impl KindInfo {
    /// Whether the schema declares the field at `path` (e.g. `["status", "ready"]`).
    pub fn has(&self, path: &[&str]) -> bool {
        let mut node = &self.schema;
        for key in path {
            match node.pointer(&format!("/properties/{key}")) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }
}

/// One API server the simulator reads and writes, with the kinds it has looked up there.
pub struct Server {
    /// "the management server" or "the workload server of <cluster>", for messages.
    pub label: String,
    pub api: DynamicApi,
    kinds: Mutex<HashMap<(String, String), Arc<KindInfo>>>,
}

impl Server {
    pub fn new(label: impl Into<String>, client: kube::Client) -> Server {
        Server {
            label: label.into(),
            api: DynamicApi::new(client),
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The storage version and schema of `group`/`kind`, from its CRD.
    pub async fn kind(&self, group: &str, kind: &str) -> Result<Arc<KindInfo>, SimulatorError> {
        let key = (group.to_string(), kind.to_string());
        if let Some(hit) = self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let unknown = |detail: String| SimulatorError::UnknownKind {
            server: self.label.clone(),
            kind: format!("{kind}.{group}"),
            detail,
        };
        let discovered = kube::discovery::group(self.api.client(), group)
            .await
            .map_err(|e| unknown(e.to_string()))?;
        let (resource, _) = discovered
            .recommended_kind(kind)
            .ok_or_else(|| unknown("no such kind in the group".to_string()))?;
        let crd_name = format!("{}.{group}", resource.plural);
        let crd = self
            .api
            .get(&serde_json::json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": crd_name},
            }))
            .await
            .map_err(|e| unknown(e.to_string()))?
            .ok_or_else(|| unknown(format!("no CustomResourceDefinition {crd_name}")))?;
        let version = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
            .ok_or_else(|| unknown(format!("{crd_name} has no storage version")))?;
        let info = Arc::new(KindInfo {
            api_version: format!("{group}/{}", version["name"].as_str().unwrap_or_default()),
            schema: version
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or(Value::Null),
        });
        self.kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, info.clone());
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_requirements_follow_the_schema() {
        let info = KindInfo {
            api_version: "x/v1".into(),
            schema: serde_json::json!({"properties": {"status": {
                "properties": {"ready": {"type": "boolean"}, "initialization": {"properties": {}}}
            }}}),
        };
        assert!(info.has(&["status", "ready"]));
        assert!(!info.has(&["status", "initialization", "provisioned"]));
    }
}
