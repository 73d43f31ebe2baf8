//! The edge to kube: clients from kubeconfigs, readiness, and a small dynamic API over any kind
//! (discovery cached per client, server-side apply with field manager `cairn`, get, delete).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use serde_json::Value;

use crate::render::kinds::object_ref;

/// Field manager of every write cairn makes.
pub const FIELD_MANAGER: &str = "cairn";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{object}: the API server does not serve {api_version} {kind}: {source}")]
    UnknownKind {
        object: String,
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: {verb} failed: {}", describe(.source))]
    Request {
        object: String,
        verb: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: not a Kubernetes object (needs apiVersion, kind and metadata.name)")]
    Malformed { object: String },
    #[error("timed out after {waited:?} waiting for: {pending}")]
    Timeout { waited: Duration, pending: String },
}

/// A client for the current context of a kubeconfig given as YAML.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, kube::Error> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(kube::Error::InferKubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

/// Ok once `/healthz` says ok and the `default` namespace exists (envtest's readiness rule).
pub async fn ready(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/healthz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let health = client
        .request_text(request)
        .await
        .map_err(|e| format!("/healthz: {e}"))?;
    if health.trim() != "ok" {
        return Err(format!("/healthz says {health:?}"));
    }
    Api::<Namespace>::all(client.clone())
        .get("default")
        .await
        .map(|_| ())
        .map_err(|e| format!("namespace default: {e}"))
}

/// Any kind, by apiVersion and kind, through one client.
pub struct DynamicApi {
    client: kube::Client,
    resources: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn str_field<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// How errors name every object of a kind: `Kind/namespace/*`, or `Kind/*` across namespaces.
fn all_of_kind(kind: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/*"),
        None => format!("{kind}/*"),
    }
}

/// A kube error as one sentence: the server's own message for refusals (kube's Display adds a
/// debug dump of the whole Status), the error chain otherwise.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// The error for a request about `object` that the server refused or did not answer.
fn request_failed(object: String, verb: &'static str) -> impl FnOnce(kube::Error) -> KubeError {
    move |source| KubeError::Request {
        object,
        verb,
        source,
    }
}

/// An object as JSON (`null` in the impossible case that it does not serialize).
fn to_json(obj: impl serde::Serialize) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Parameters of a merge patch written by `field_manager`.
fn merge_params(field_manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(field_manager.to_string()),
        ..PatchParams::default()
    }
}

impl DynamicApi {
    pub fn new(client: kube::Client) -> DynamicApi {
        DynamicApi {
            client,
            resources: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The resource of a kind; successful lookups are cached (new CRDs are found on demand).
    pub async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(hit) = self
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let (group, version) = split_api_version(api_version);
        let found = pinned_kind(&self.client, &GroupVersionKind::gvk(group, version, kind)).await?;
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }

    /// [`resource`](Self::resource), failing as [`KubeError::UnknownKind`] about `object`.
    async fn served_resource(
        &self,
        object: String,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        self.resource(api_version, kind)
            .await
            .map_err(|source| KubeError::UnknownKind {
                object,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                source,
            })
    }

    /// The typed-less API for `obj`'s kind in its namespace.
    pub async fn api_for(&self, obj: &Value) -> Result<(Api<DynamicObject>, String), KubeError> {
        let object = object_ref(obj);
        let (Some(api_version), Some(kind), Some(name)) = (
            str_field(obj, "/apiVersion"),
            str_field(obj, "/kind"),
            str_field(obj, "/metadata/name"),
        ) else {
            return Err(KubeError::Malformed { object });
        };
        let (resource, caps) = self.served_resource(object, api_version, kind).await?;
        let api = match (caps.scope, str_field(obj, "/metadata/namespace")) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            (Scope::Namespaced, None) => {
                Api::default_namespaced_with(self.client.clone(), &resource)
            }
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, name.to_string()))
    }

    /// Server-side apply (optionally dry-run), taking ownership of conflicting fields when
    /// `force` is set. Returns the object as the server has (or would have) it.
    pub async fn apply(&self, obj: &Value, dry_run: bool, force: bool) -> Result<Value, KubeError> {
        self.server_side_apply(obj, FIELD_MANAGER, dry_run, force)
            .await
    }

    /// Server-side apply under any field manager: what [`apply`](Self::apply) and
    /// [`apply_as`](Self::apply_as) share.
    async fn server_side_apply(
        &self,
        obj: &Value,
        field_manager: &str,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        // Strict: an unknown or misspelt field is an error, not a silently dropped warning.
        let mut params = PatchParams::apply(field_manager).validation_strict();
        if force {
            params = params.force();
        }
        if dry_run {
            params = params.dry_run();
        }
        let verb = if dry_run {
            "server-side dry-run apply"
        } else {
            "server-side apply"
        };
        api.patch(&name, &params, &Patch::Apply(obj))
            .await
            .map(to_json)
            .map_err(request_failed(object_ref(obj), verb))
    }

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, obj: &Value) -> Result<Option<Value>, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        let found = api
            .get_opt(&name)
            .await
            .map_err(request_failed(object_ref(obj), "get"))?;
        Ok(found.map(to_json))
    }
}

impl DynamicApi {
    /// The API of a kind, in `namespace` (or across all namespaces / cluster-scoped when `None`).
    pub async fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, KubeError> {
        let (resource, caps) = self
            .served_resource(all_of_kind(kind, namespace), api_version, kind)
            .await?;
        Ok(match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// Every object of a kind (in `namespace`, or everywhere), optionally filtered by a label
    /// selector. Each item carries its `apiVersion` and `kind`.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let api = self.api(api_version, kind, namespace).await?;
        let mut params = ListParams::default();
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        let list = api
            .list(&params)
            .await
            .map_err(request_failed(all_of_kind(kind, namespace), "list"))?;
        Ok(list
            .items
            .into_iter()
            .map(|item| {
                let mut value = to_json(item);
                value["apiVersion"] = Value::from(api_version);
                value["kind"] = Value::from(kind);
                value
            })
            .collect())
    }

    /// Server-side apply under another field manager (strict validation, forcing conflicts when
    /// `force`).
    pub async fn apply_as(
        &self,
        obj: &Value,
        field_manager: &str,
        force: bool,
    ) -> Result<Value, KubeError> {
        self.server_side_apply(obj, field_manager, false, force)
            .await
    }

    /// A JSON merge patch (RFC 7386) of `obj` (which names the object). Put
    /// `metadata.resourceVersion` in the patch for optimistic concurrency.
    pub async fn merge_patch(
        &self,
        obj: &Value,
        patch: &Value,
        field_manager: &str,
    ) -> Result<Value, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        api.patch(&name, &merge_params(field_manager), &Patch::Merge(patch))
            .await
            .map(to_json)
            .map_err(request_failed(object_ref(obj), "patch"))
    }

    /// A JSON merge patch of the status subresource: `{"status": status}`.
    pub async fn patch_status(
        &self,
        obj: &Value,
        status: &Value,
        field_manager: &str,
    ) -> Result<Value, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &merge_params(field_manager), &Patch::Merge(&patch))
            .await
            .map(to_json)
            .map_err(request_failed(object_ref(obj), "patch status"))
    }

    /// Creates the object; when one of that name exists, replaces it, keeping the existing
    /// uid and taking its resourceVersion (what `clusterctl move` does, so a rerun converges).
    /// Status is a subresource and is left to the target's controllers.
    pub async fn create_or_replace(
        &self,
        obj: &Value,
        field_manager: &str,
    ) -> Result<Value, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        let object: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|_| KubeError::Malformed {
                object: object_ref(obj),
            })?;
        let params = PostParams {
            field_manager: Some(field_manager.to_string()),
            ..PostParams::default()
        };
        match api.create(&params, &object).await {
            Ok(created) => return Ok(to_json(created)),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => return Err(request_failed(object_ref(obj), "create")(source)),
        }
        let existing = api
            .get(&name)
            .await
            .map_err(request_failed(object_ref(obj), "get"))?;
        let mut replacement = object;
        replacement.metadata.uid = existing.metadata.uid;
        replacement.metadata.resource_version = existing.metadata.resource_version;
        api.replace(&name, &params, &replacement)
            .await
            .map(to_json)
            .map_err(request_failed(object_ref(obj), "replace"))
    }

    /// The live object named by group, kind, namespace and name, at the version the server
    /// prefers (for callers that know an object by its key only, like previews).
    pub async fn get_by_key(
        &self,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, KubeError> {
        let what = if namespace.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}/{namespace}/{name}")
        };
        let unknown = |source| KubeError::UnknownKind {
            object: what.clone(),
            api_version: group.to_string(),
            kind: kind.to_string(),
            source,
        };
        let api_group = kube::discovery::group(&self.client, group)
            .await
            .map_err(unknown)?;
        let Some((resource, caps)) = api_group.recommended_kind(kind) else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        let found = api
            .get_opt(name)
            .await
            .map_err(request_failed(what.clone(), "get"))?;
        Ok(found.map(|o| {
            let mut value = to_json(o);
            value["apiVersion"] = Value::from(resource.api_version.clone());
            value["kind"] = Value::from(kind);
            value
        }))
    }

    /// Deletes the object (only the one with `obj`'s uid, when it has one). Returns false when it
    /// was already gone.
    pub async fn delete(&self, obj: &Value) -> Result<bool, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        let mut params = DeleteParams::background();
        if let Some(uid) = str_field(obj, "/metadata/uid") {
            params = params.preconditions(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            });
        }
        match api.delete(&name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            // The uid precondition failed: the object was replaced by another of the same name.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(request_failed(object_ref(obj), "delete")(source)),
        }
    }
}

/// Applies CustomResourceDefinitions and waits until every one is Established.
pub async fn install_crds(
    api: &DynamicApi,
    crds: &[Value],
    timeout: Duration,
) -> Result<(), KubeError> {
    for crd in crds {
        api.apply(crd, false, true).await?;
    }
    let start = Instant::now();
    loop {
        let mut pending = Vec::new();
        for crd in crds {
            let live = api.get(crd).await?;
            if !live.as_ref().is_some_and(is_established) {
                pending.push(object_ref(crd));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(KubeError::Timeout {
                waited: timeout,
                pending: format!("{} not Established", pending.join(", ")),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A CRD whose `Established` condition is True.
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}
