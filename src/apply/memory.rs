//! A [`ClusterApi`] in memory, for unit tests of the pivot mover (`pivot::mover_table`). The
//! end-to-end tests run real kube-apiservers, which take seconds to start and minutes for a
//! fault table; this fake answers at once, so one table can crash a move after every step in
//! both directions and resume it in well under a second. It sits beside the real tests and
//! replaces none of them.
//!
//! It behaves like an API server where the mover relies on one, and nowhere else:
//! - Kinds: core `v1` kinds and CRDs are always served; any other kind only while an
//!   Established CRD serves it at that version (what a real client's discovery finds), else
//!   [`KubeError::UnknownKind`], as from a target without the CAPI CRDs yet. Objects are stored
//!   once per (group, kind, namespace, name) and read at whichever version is asked for (no
//!   conversion). A CRD is Established as soon as it is written (the apiextensions controller's
//!   job).
//! - Writes: a create assigns `metadata.uid` and needs the object's Namespace (404 otherwise);
//!   every write bumps `metadata.resourceVersion` (one counter per server, like etcd's
//!   revision). Custom resources have a status subresource: writes of the main resource keep
//!   the live status (a create has none); only [`MemoryApi::seed`] and
//!   [`MemoryApi::patch_status`] write it, as controllers do.
//! - Verbs: `get` of a missing object is `None`; `merge_patch` (RFC 7386) of one is 404
//!   (`is_not_found`); a `metadata.resourceVersion` in a merge patch or an applied object that is
//!   not the live one is 409 (`is_conflict`), as `ApiError::Conflict` like `KubeClusterApi`
//!   reports every 409. `apply` creates or merges (no field ownership, lists replaced whole;
//!   `dry_run` is the same, unstored). `create_or_replace` replaces an existing object keeping
//!   its uid, as `DynamicApi::create_or_replace` does after the create's 409, so no 409 reaches
//!   its caller. `delete` honours the uid precondition (false when the name now holds another
//!   object, like `DynamicApi::delete`); an object with finalizers only gets a
//!   `deletionTimestamp`, and goes when a write leaves it none (the mover clears them).
//! - `list` filters by namespace (ignored for cluster-scoped kinds) and by equality-based label
//!   selectors (`k`, `!k`, `k=v`, `k==v`, `k!=v`, comma-separated); set-based ones get 400.
//! - managedFields: each write records its manager (`cairn` Apply, `cairn-mover` create or
//!   replace, `cairn-phase` patch), except one that sets `metadata.managedFields`, which then
//!   stand as given (how the mover gives a moved object back its source's field owners).
//!
//! `Clone` copies the whole server, so a test can build a starting point once and fork it.
//! Not modelled: garbage collection, admission and validation, watches, generation, timestamps
//! (but a fixed `deletionTimestamp`).

// Every verb answers with the trait's `ApiError`, whatever its size.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::api::{ApiError, ClusterApi, MOVE_MANAGER, PHASE_MANAGER};
use crate::diff::key::ObjectKey;
use crate::kube_client::{FIELD_MANAGER, KubeError, is_established};
use crate::render::kinds::{api_group, object_ref};

const CRD_API: &str = "apiextensions.k8s.io/v1";
/// The manager of what [`MemoryApi::seed`] writes: controller-runtime's default.
const SEED_MANAGER: &str = "manager";
const DELETED_AT: &str = "2026-01-01T00:00:00Z";

/// Uids are unique across every fake of the process, as across real clusters.
static UIDS: AtomicU64 = AtomicU64::new(1);

/// An API server in memory. [`MemoryApi::new`] has the `default` and `kube-system` Namespaces.
pub struct MemoryApi {
    /// Shared with the views [`ClusterApi::impersonating`] hands out.
    state: Arc<Mutex<State>>,
}

#[derive(Clone, Default)]
struct State {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
}

fn refusal(object: String, verb: &'static str, code: u16, reason: &str, message: &str) -> ApiError {
    let status = kube::core::Status::failure(message, reason).with_code(code);
    ApiError::Kube(KubeError::Request {
        object,
        verb,
        source: kube::Error::Api(status.boxed()),
    })
}

fn not_found(obj: &Value, verb: &'static str) -> ApiError {
    let object = object_ref(obj);
    let message = format!("{object} not found");
    refusal(object, verb, 404, "NotFound", &message)
}

/// The non-empty string at `path` (a JSON pointer through object keys only, read without the
/// allocations of `Value::pointer`: the fake is called often).
fn text<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    path.split('/')
        .skip(1)
        .try_fold(obj, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// 409 unless `wanted` (a resourceVersion precondition, when given) is `live`'s.
fn precondition(wanted: Option<&str>, live: Option<&Value>, obj: &Value) -> Result<(), ApiError> {
    match wanted {
        Some(rv) if live.and_then(|l| text(l, "/metadata/resourceVersion")) != Some(rv) => {
            Err(ApiError::Conflict {
                object: object_ref(obj),
                message: "the object has been modified; please apply your changes to the latest \
                          version and try again"
                    .into(),
            })
        }
        _ => Ok(()),
    }
}

/// Records a write by `manager` in `obj`'s managedFields, unless the request set them itself.
fn record_manager(obj: &mut Value, request: &Value, manager: &str, operation: &str) {
    if request.pointer("/metadata/managedFields").is_some() {
        return;
    }
    let entry = json!({"manager": manager, "operation": operation,
                       "apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1"});
    let fields = &mut obj["metadata"]["managedFields"];
    match fields.as_array_mut() {
        Some(entries) if entries.iter().any(|e| e["manager"] == manager) => {}
        Some(entries) => entries.push(entry),
        None => *fields = json!([entry]),
    }
}

/// One term of an equality-based label selector.
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    Differs(String, String),
}

fn parse_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    let unsupported =
        || format!("unsupported label selector (this fake knows equality-based ones): {selector}");
    if selector.contains(['(', ' ']) {
        return Err(unsupported());
    }
    let pair = |(k, v): (&str, &str)| (k.to_string(), v.to_string());
    Ok(selector
        .split(',')
        .filter(|term| !term.is_empty())
        .map(|term| {
            if let Some(key) = term.strip_prefix('!') {
                Requirement::Absent(key.to_string())
            } else if let Some((k, v)) = term.split_once("!=").map(pair) {
                Requirement::Differs(k, v)
            } else if let Some((k, v)) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .map(pair)
            {
                Requirement::Equals(k, v)
            } else {
                Requirement::Exists(term.to_string())
            }
        })
        .collect())
}

impl Requirement {
    fn matches(&self, obj: &Value) -> bool {
        let label = |key: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(key)?.as_str())
        };
        match self {
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::Absent(k) => label(k).is_none(),
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::Differs(k, v) => label(k) != Some(v.as_str()),
        }
    }
}

impl State {
    /// Whether `kind` is served at `api_version`, and if so whether it is namespaced.
    fn namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        match (api_version, kind) {
            ("v1", "Namespace" | "Node" | "PersistentVolume") => return Some(false),
            (CRD_API, "CustomResourceDefinition") => return Some(false),
            ("v1", _) => return Some(true),
            _ => {}
        }
        let (group, version) = api_version.split_once('/')?;
        let crds = ObjectKey {
            group: api_group(CRD_API).into(),
            kind: "CustomResourceDefinition".into(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(&crds..)
            .take_while(|(k, _)| k.group == crds.group && k.kind == crds.kind)
            .map(|(_, crd)| crd)
            .find(|crd| {
                crd["spec"]["group"] == group
                    && crd["spec"]["names"]["kind"] == kind
                    && is_established(crd)
                    && crd["spec"]["versions"].as_array().is_some_and(|vs| {
                        vs.iter()
                            .any(|v| v["name"] == version && v["served"] == true)
                    })
            })
            .map(|crd| crd["spec"]["scope"] == "Namespaced")
    }

    fn unknown_kind(&self, object: String, api_version: &str, kind: &str) -> ApiError {
        let status = kube::core::Status::failure(
            "the server could not find the requested resource",
            "NotFound",
        );
        ApiError::Kube(KubeError::UnknownKind {
            object,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            source: kube::Error::Api(status.with_code(404).boxed()),
        })
    }

    /// The key `obj` is stored under: no namespace when its kind is cluster-scoped, `default`
    /// when a namespaced object names none (as kube's client does).
    fn key(&self, obj: &Value) -> Result<ObjectKey, ApiError> {
        let object = object_ref(obj);
        let (Some(api_version), Some(kind), Some(_)) = (
            text(obj, "/apiVersion"),
            text(obj, "/kind"),
            text(obj, "/metadata/name"),
        ) else {
            return Err(ApiError::Kube(KubeError::Malformed { object }));
        };
        let Some(namespaced) = self.namespaced(api_version, kind) else {
            return Err(self.unknown_kind(object, api_version, kind));
        };
        let mut key = ObjectKey::of(obj);
        if !namespaced {
            key.namespace.clear();
        } else if key.namespace.is_empty() {
            key.namespace = "default".into();
        }
        Ok(key)
    }

    /// Stores `obj` under `key` over `live` (if any): the uid kept or assigned, the
    /// resourceVersion bumped, the live status kept unless this is a `status_write`. An object
    /// being deleted that is left without finalizers goes.
    fn put(
        &mut self,
        key: &ObjectKey,
        mut obj: Value,
        live: Option<Value>,
        status_write: bool,
    ) -> Result<Value, ApiError> {
        let namespace = ObjectKey {
            group: String::new(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: key.namespace.clone(),
        };
        if live.is_none() && !key.namespace.is_empty() && !self.objects.contains_key(&namespace) {
            let message = format!("namespaces \"{}\" not found", key.namespace);
            return Err(refusal(
                object_ref(&obj),
                "create",
                404,
                "NotFound",
                &message,
            ));
        }
        let live = live.unwrap_or(Value::Null);
        if !status_write && !key.group.is_empty() {
            match live.get("status") {
                Some(status) => obj["status"] = status.clone(),
                None => obj["status"] = Value::Null,
            }
        }
        if key.kind == "CustomResourceDefinition" {
            obj["status"]["conditions"] = json!([
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True"},
            ]);
        }
        if let Some(map) = obj.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        self.revision += 1;
        let meta = &mut obj["metadata"];
        meta["uid"] = match text(&live, "/metadata/uid") {
            Some(uid) => json!(uid),
            None => json!(format!(
                "00000000-0000-4000-8000-{:012x}",
                UIDS.fetch_add(1, Ordering::Relaxed)
            )),
        };
        meta["resourceVersion"] = json!(self.revision.to_string());
        meta["namespace"] = json!(key.namespace);
        if key.namespace.is_empty()
            && let Some(meta) = meta.as_object_mut()
        {
            meta.remove("namespace");
        }
        if let Some(at) = live.pointer("/metadata/deletionTimestamp") {
            meta["deletionTimestamp"] = at.clone();
            if meta["finalizers"].as_array().is_none_or(Vec::is_empty) {
                self.objects.remove(key);
                return Ok(obj);
            }
        }
        self.objects.insert(key.clone(), obj.clone());
        Ok(obj)
    }

    fn apply(&mut self, obj: &Value) -> Result<Value, ApiError> {
        let key = self.key(obj)?;
        let live = self.objects.get(&key).cloned();
        precondition(text(obj, "/metadata/resourceVersion"), live.as_ref(), obj)?;
        let mut merged = live.clone().unwrap_or_else(|| json!({}));
        json_patch::merge(&mut merged, obj);
        record_manager(&mut merged, obj, FIELD_MANAGER, "Apply");
        self.put(&key, merged, live, false)
    }
}

/// A copy of the server as it is now, which then goes its own way: a test builds a starting
/// point once and runs each case on a copy of it.
impl Clone for MemoryApi {
    fn clone(&self) -> MemoryApi {
        MemoryApi {
            state: Arc::new(Mutex::new(self.state().clone())),
        }
    }
}

impl Default for MemoryApi {
    fn default() -> MemoryApi {
        MemoryApi::new()
    }
}

impl MemoryApi {
    pub fn new() -> MemoryApi {
        let api = MemoryApi {
            state: Arc::new(Mutex::new(State::default())),
        };
        for name in ["default", "kube-system"] {
            api.seed(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
        }
        api
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked mid-call leaves a consistent store: every call is one `put`.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `obj` as its controllers would have: created or replaced, status included,
    /// managed by `manager` unless it says otherwise. Panics when refused.
    pub fn seed(&self, obj: &Value) -> Value {
        let mut state = self.state();
        let stored = state.key(obj).and_then(|key| {
            let live = state.objects.get(&key).cloned();
            let mut seeded = obj.clone();
            record_manager(&mut seeded, obj, SEED_MANAGER, "Update");
            state.put(&key, seeded, live, true)
        });
        stored.unwrap_or_else(|e| panic!("seeding {}: {e}", object_ref(obj)))
    }

    /// Merges `status` into the live object's status (the status subresource). Panics when
    /// the object does not exist.
    pub fn patch_status(&self, obj: &Value, status: &Value) -> Value {
        let mut state = self.state();
        let key = state.key(obj).unwrap_or_else(|e| panic!("{e}"));
        let live = state.objects.get(&key).cloned();
        let mut patched = live
            .clone()
            .unwrap_or_else(|| panic!("{key} does not exist"));
        json_patch::merge(&mut patched, &json!({ "status": status }));
        state
            .put(&key, patched, live, true)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every stored object, in key order.
    pub fn objects(&self) -> Vec<Value> {
        self.state().objects.values().cloned().collect()
    }

    /// The server's revision: how many writes it has taken.
    pub fn revision(&self) -> u64 {
        self.state().revision
    }
}

impl ClusterApi for MemoryApi {
    /// The same store: the in-memory server has no RBAC to confine anyone with.
    fn impersonating(&self, _user: &str) -> Result<MemoryApi, ApiError> {
        Ok(MemoryApi {
            state: Arc::clone(&self.state),
        })
    }

    async fn dry_run(&self, obj: &Value) -> Result<Value, ApiError> {
        let mut scratch = self.state().clone();
        scratch.apply(obj)
    }

    async fn apply(&self, obj: &Value) -> Result<Value, ApiError> {
        self.state().apply(obj)
    }

    async fn get(&self, obj: &Value) -> Result<Option<Value>, ApiError> {
        let state = self.state();
        let key = state.key(obj)?;
        Ok(state.objects.get(&key).map(|live| {
            let mut live = live.clone();
            live["apiVersion"] = obj["apiVersion"].clone();
            live
        }))
    }

    async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let state = self.state();
        let object = format!(
            "{kind}/{}*",
            namespace.map(|ns| format!("{ns}/")).unwrap_or_default()
        );
        let Some(namespaced) = state.namespaced(api_version, kind) else {
            return Err(state.unknown_kind(object, api_version, kind));
        };
        let selector = parse_selector(label_selector.unwrap_or_default())
            .map_err(|message| refusal(object, "list", 400, "BadRequest", &message))?;
        let group = api_group(api_version);
        Ok(state
            .objects
            .iter()
            .filter(|(k, _)| k.group == group && k.kind == kind)
            .filter(|(k, _)| !namespaced || namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, obj)| obj)
            .filter(|obj| selector.iter().all(|r| r.matches(obj)))
            .map(|obj| {
                let mut obj = obj.clone();
                obj["apiVersion"] = json!(api_version);
                obj
            })
            .collect())
    }

    async fn delete(&self, obj: &Value) -> Result<bool, ApiError> {
        let mut state = self.state();
        let key = state.key(obj)?;
        let Some(live) = state.objects.get(&key) else {
            return Ok(false);
        };
        if let Some(uid) = text(obj, "/metadata/uid")
            && text(live, "/metadata/uid") != Some(uid)
        {
            return Ok(false);
        }
        if live["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            state.objects.remove(&key);
        } else if live.pointer("/metadata/deletionTimestamp").is_none() {
            state.revision += 1;
            let revision = state.revision.to_string();
            let live = state.objects.get_mut(&key).expect("just read");
            live["metadata"]["deletionTimestamp"] = json!(DELETED_AT);
            live["metadata"]["resourceVersion"] = json!(revision);
        }
        Ok(true)
    }

    async fn merge_patch(&self, obj: &Value, patch: &Value) -> Result<Value, ApiError> {
        let mut state = self.state();
        let key = state.key(obj)?;
        let Some(live) = state.objects.get(&key).cloned() else {
            return Err(not_found(obj, "patch"));
        };
        precondition(text(patch, "/metadata/resourceVersion"), Some(&live), obj)?;
        let mut patched = live.clone();
        json_patch::merge(&mut patched, patch);
        record_manager(&mut patched, patch, PHASE_MANAGER, "Update");
        state.put(&key, patched, Some(live), false)
    }

    async fn create_or_replace(&self, obj: &Value) -> Result<Value, ApiError> {
        let mut state = self.state();
        let key = state.key(obj)?;
        let live = state.objects.get(&key).cloned();
        let mut new = obj.clone();
        if new.pointer("/metadata/managedFields").is_none()
            && let Some(fields) = live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/managedFields"))
        {
            new["metadata"]["managedFields"] = fields.clone();
        }
        record_manager(&mut new, obj, MOVE_MANAGER, "Update");
        state.put(&key, new, live, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_and_keeps_what_a_real_server_would() {
        let api = MemoryApi::new();
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "m", "namespace": "default", "finalizers": ["x"]}});
        let gone = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}});
        assert!(
            api.merge_patch(&gone, &json!({}))
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(api.get(&gone).await.unwrap(), None);
        let elsewhere = json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "m", "namespace": "nowhere"}});
        assert!(api.apply(&elsewhere).await.unwrap_err().is_not_found());
        let unserved = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                              "metadata": {"name": "c", "namespace": "default"}});
        assert!(matches!(
            api.get(&unserved).await,
            Err(ApiError::Kube(KubeError::UnknownKind { .. }))
        ));

        let created = api.create_or_replace(&map).await.unwrap();
        let replaced = api.create_or_replace(&map).await.unwrap();
        assert_eq!(created["metadata"]["uid"], replaced["metadata"]["uid"]);
        assert_ne!(
            created["metadata"]["resourceVersion"],
            replaced["metadata"]["resourceVersion"]
        );
        let stale =
            json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}});
        assert!(
            api.merge_patch(&map, &stale)
                .await
                .unwrap_err()
                .is_conflict()
        );
        let selected =
            |selector: &'static str| api.list("v1", "ConfigMap", Some("default"), Some(selector));
        assert_eq!(selected("!a").await.unwrap().len(), 1);
        assert_eq!(selected("a=b").await.unwrap().len(), 0);
        assert!(selected("a in (b)").await.is_err());

        // Finalizers hold a deleted object until a write clears them.
        assert!(api.delete(&map).await.unwrap());
        assert!(api.get(&map).await.unwrap().unwrap()["metadata"]["deletionTimestamp"].is_string());
        api.merge_patch(&map, &json!({"metadata": {"finalizers": null}}))
            .await
            .unwrap();
        assert_eq!(api.get(&map).await.unwrap(), None);
        assert!(!api.delete(&map).await.unwrap());
    }
}
