//! Reading and writing objects as the simulator does: field manager `cairn-simulator`, status
//! through the status subresource and only when it changes, ownership and finalizers by merge
//! patch with optimistic concurrency (never stealing fields another manager applied).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::SimulatorError;
use super::schema::{KindInfo, Server};
use crate::kube_client::KubeError;

/// Field manager of every write the simulator makes.
pub const FIELD_MANAGER: &str = "cairn-simulator";

// The versions the simulator serves are the ones cairn renders.
pub use crate::render::capi::{BOOTSTRAP_API, CLUSTER_API as CAPI, CONTROL_PLANE_API as KCP_API};
pub const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";

/// The string at `pointer`, or "".
pub fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    crate::render::kinds::str_at(obj, pointer).unwrap_or("")
}

/// A copy of the value at `pointer`, or null.
pub fn cloned_at(obj: &Value, pointer: &str) -> Value {
    obj.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// The integer at `pointer`, or `default`.
pub fn int(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

pub fn name(obj: &Value) -> &str {
    s(obj, "/metadata/name")
}

pub fn uid(obj: &Value) -> &str {
    s(obj, "/metadata/uid")
}

pub fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The group of an apiVersion ("" for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// `Kind/namespace/name`.
pub fn object_ref(obj: &Value) -> String {
    crate::render::kinds::object_ref(obj)
}

/// A skeleton naming an object: apiVersion, kind, namespace, name.
pub fn ident(api_version: &str, kind: &str, namespace: &str, name: &str) -> Value {
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if !namespace.is_empty() {
        obj["metadata"]["namespace"] = namespace.into();
    }
    obj
}

/// An ownerReference to `owner`.
pub fn owner_ref(owner: &Value, controller: bool) -> Value {
    json!({
        "apiVersion": s(owner, "/apiVersion"),
        "kind": s(owner, "/kind"),
        "name": name(owner),
        "uid": uid(owner),
        "controller": controller,
        "blockOwnerDeletion": true,
    })
}

/// A merge patch setting the metadata list `field` of `obj` to `value`, only if `obj` has not
/// changed since it was read: the list is replaced whole, so a concurrent change would be lost.
fn metadata_list_patch(obj: &Value, field: &str, value: Vec<Value>) -> Value {
    json!({"metadata": {
        "resourceVersion": s(obj, "/metadata/resourceVersion"),
        field: value,
    }})
}

fn finalizers(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The ownerReferences of `obj` (none when it has none).
pub fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether `obj`'s controller (the owner reference with `controller: true`) has `owner_uid`.
pub fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    owner_refs(obj)
        .iter()
        .any(|r| r["controller"] == true && r["uid"] == owner_uid)
}

/// The labels of `obj` (a copy), as a map.
pub fn labels(obj: &Value, pointer: &str) -> Map<String, Value> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn kube(step: &'static str) -> impl FnOnce(KubeError) -> SimulatorError {
    move |source| SimulatorError::Kube {
        step,
        source: Box::new(source),
    }
}

/// A request the server answered with 404: the kind or the object is not (or no longer) there.
fn is_not_found(e: &KubeError) -> bool {
    matches!(e, KubeError::Request { source: kube::Error::Api(status), .. } if status.code == 404)
}

impl Server {
    /// Every object of a kind in `namespace` (or everywhere). A kind the server does not serve
    /// has no objects.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, SimulatorError> {
        match self
            .api
            .list(api_version, kind, namespace, label_selector)
            .await
        {
            Err(KubeError::UnknownKind { .. }) => Ok(Vec::new()),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            other => other.map_err(kube("list")),
        }
    }

    /// The object named by `ident`, if it exists.
    pub async fn fetch(&self, ident: &Value) -> Result<Option<Value>, SimulatorError> {
        match self.api.get(ident).await {
            Err(KubeError::UnknownKind { .. }) => Ok(None),
            other => other.map_err(kube("read")),
        }
    }

    /// The CAPI objects of `kind` in `namespace` that belong to `cluster` (by `spec.clusterName`).
    pub async fn cluster_objects(
        &self,
        kind: &str,
        namespace: &str,
        cluster: &str,
    ) -> Result<Vec<Value>, SimulatorError> {
        Ok(self
            .list(CAPI, kind, Some(namespace), None)
            .await?
            .into_iter()
            .filter(|o| s(o, "/spec/clusterName") == cluster)
            .collect())
    }

    /// The object named by `wanted`, which `referrer` references: an error when it does not
    /// exist (yet).
    pub async fn fetch_referenced(
        &self,
        referrer: &Value,
        wanted: &Value,
    ) -> Result<Value, SimulatorError> {
        self.fetch(wanted)
            .await?
            .ok_or_else(|| SimulatorError::MissingRef {
                referrer: object_ref(referrer),
                object: object_ref(wanted),
            })
    }

    /// What a v1beta2 reference (`apiGroup`, `kind`, `name`) in `namespace` names: the kind,
    /// and a skeleton of the object in its storage version.
    pub async fn resolve(
        &self,
        reference: &Value,
        namespace: &str,
    ) -> Result<(Arc<KindInfo>, Value), SimulatorError> {
        let kind = s(reference, "/kind");
        let info = self.kind(s(reference, "/apiGroup"), kind).await?;
        let wanted = ident(&info.api_version, kind, namespace, s(reference, "/name"));
        Ok((info, wanted))
    }

    /// Creates or updates an object the simulator owns entirely (server-side apply).
    pub async fn apply(&self, obj: &Value, step: &'static str) -> Result<Value, SimulatorError> {
        self.api
            .apply_as(obj, FIELD_MANAGER, true)
            .await
            .map_err(kube(step))
    }

    pub async fn merge_patch(
        &self,
        obj: &Value,
        patch: &Value,
        step: &'static str,
    ) -> Result<Value, SimulatorError> {
        self.api
            .merge_patch(obj, patch, FIELD_MANAGER)
            .await
            .map_err(kube(step))
    }

    /// Merges `status` into the object's status through the status subresource, only when that
    /// changes something. Returns the object as it now is.
    pub async fn set_status(
        &self,
        obj: &Value,
        status: Value,
        step: &'static str,
    ) -> Result<Value, SimulatorError> {
        let current = obj.get("status").cloned().unwrap_or(Value::Null);
        let mut merged = if current.is_object() {
            current.clone()
        } else {
            json!({})
        };
        json_patch::merge(&mut merged, &status);
        if merged == current {
            return Ok(obj.clone());
        }
        self.api
            .patch_status(obj, &status, FIELD_MANAGER)
            .await
            .map_err(kube(step))
    }

    /// Deletes the object; false when it was already gone.
    pub async fn delete(&self, obj: &Value, step: &'static str) -> Result<bool, SimulatorError> {
        match self.api.delete(obj).await {
            Err(KubeError::UnknownKind { .. }) => Ok(false),
            other => other.map_err(kube(step)),
        }
    }

    /// Adds an owner reference to `owner` unless `obj` has one (a reference to an owner of the
    /// same kind and name with another uid, left by a move, is replaced).
    pub async fn ensure_owner(
        &self,
        obj: &Value,
        owner: &Value,
        controller: bool,
    ) -> Result<Value, SimulatorError> {
        let refs = owner_refs(obj);
        if refs.iter().any(|r| r["uid"] == uid(owner)) {
            return Ok(obj.clone());
        }
        let mut kept: Vec<Value> = refs
            .iter()
            .filter(|r| !(r["kind"] == s(owner, "/kind") && r["name"] == name(owner)))
            .cloned()
            .collect();
        let has_controller = kept.iter().any(|r| r["controller"] == true);
        kept.push(owner_ref(owner, controller && !has_controller));
        let patch = metadata_list_patch(obj, "ownerReferences", kept);
        self.merge_patch(obj, &patch, "set the owner reference")
            .await
    }

    /// Adds `finalizer` unless present.
    pub async fn ensure_finalizer(
        &self,
        obj: &Value,
        finalizer: &str,
    ) -> Result<Value, SimulatorError> {
        let mut finalizers = finalizers(obj);
        if finalizers.iter().any(|f| f == finalizer) {
            return Ok(obj.clone());
        }
        finalizers.push(finalizer.into());
        let patch = metadata_list_patch(obj, "finalizers", finalizers);
        self.merge_patch(obj, &patch, "add the finalizer").await
    }

    /// Removes `finalizer` if present.
    pub async fn remove_finalizer(
        &self,
        obj: &Value,
        finalizer: &str,
    ) -> Result<(), SimulatorError> {
        let finalizers = finalizers(obj);
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let kept: Vec<Value> = finalizers.into_iter().filter(|f| f != finalizer).collect();
        let patch = metadata_list_patch(obj, "finalizers", kept);
        match self.api.merge_patch(obj, &patch, FIELD_MANAGER).await {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other.map(|_| ()).map_err(kube("remove the finalizer")),
        }
    }
}
