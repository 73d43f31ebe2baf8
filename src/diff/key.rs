//! The identity of an object across revisions and API versions: group, kind, namespace, name.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render::kinds::object_key;

/// What inventories record and plans name. The API version is not part of it, so an object
/// whose apiVersion moves from `v1beta1` to `v1beta2` within its group stays the same object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group, `""` for the core group.
    pub group: String,
    pub kind: String,
    /// `""` for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object, as [`object_key`] reads it.
    pub fn of(obj: &Value) -> ObjectKey {
        ObjectKey::from(object_key(obj))
    }
}

impl From<(String, String, String, String)> for ObjectKey {
    fn from((group, kind, namespace, name): (String, String, String, String)) -> Self {
        ObjectKey {
            group,
            kind,
            namespace,
            name,
        }
    }
}

/// `Kind/namespace/name`, or `Kind/name` when cluster-scoped, as `object_ref` names objects.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::kinds::object_ref;
    use serde_json::json;

    #[test]
    fn key_ignores_version_and_displays_like_object_ref() {
        let v1 = json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
                        "metadata": {"namespace": "prod", "name": "prod"}});
        let v2 = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                        "metadata": {"namespace": "prod", "name": "prod"}});
        let key = ObjectKey::of(&v2);
        assert_eq!(ObjectKey::of(&v1), key);
        assert_eq!(key.group, "cluster.x-k8s.io");
        assert_eq!(key.to_string(), object_ref(&v2));
        assert_eq!(key.to_string(), "Cluster/prod/prod");

        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        assert_eq!(ObjectKey::of(&ns).to_string(), "Namespace/prod");
        assert_eq!(ObjectKey::of(&ns).group, "");
    }
}
