//! The edge to kube: clients from kubeconfigs, readiness, and a small dynamic API over any kind
//! (discovery cached per client, server-side apply with field manager `cairn`, get, delete).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// How long a client waits for a TCP (and TLS) connection to its API server. kube's default is
/// 30 s; an API server that takes longer than this to accept a connection is as good as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{object}: the API server does not serve {api_version} {kind}")]
    UnknownKind {
        object: String,
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: {verb} failed")]
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
    #[error("`{user}` cannot be impersonated (not a valid HTTP header value)")]
    Impersonate { user: String },
    /// No connection to the API server (refused, DNS, TLS handshake, connect timeout). `answered`
    /// says whether this server had answered an earlier request of the same [`DynamicApi`]: if
    /// it never has, the kubeconfig is wrong or the cluster is down, and retrying is pointless.
    /// The kube error is kept in `cause` (not a `#[source]`: `reason` already says it).
    #[error("{}", unreachable_text(.server.as_deref(), .reason, .answered))]
    Unreachable {
        /// The server's URL, when the client's creator said it.
        server: Option<String>,
        /// What went wrong, in a few words (`connection refused`).
        reason: String,
        answered: bool,
        cause: Box<kube::Error>,
    },
}

impl KubeError {
    /// The HTTP status the server refused the request (or the discovery of its kind) with.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Request {
                source: kube::Error::Api(status),
                ..
            }
            | KubeError::UnknownKind {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// The server refused a request (get, delete, patch...; not discovery) with 404 Not Found:
    /// the object (or its namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.request_status() == Some(404)
    }

    /// The server refused a request with 409 Conflict: a server-side apply field conflict, an
    /// object that already exists, or a failed uid/resourceVersion precondition.
    pub fn is_conflict(&self) -> bool {
        self.request_status() == Some(409)
    }

    /// No connection could be made to the API server.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, KubeError::Unreachable { .. })
    }

    fn request_status(&self) -> Option<u16> {
        match self {
            KubeError::Request {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// The text of [`KubeError::Unreachable`].
fn unreachable_text(server: Option<&str>, reason: &str, answered: &bool) -> String {
    let server = match server {
        Some(url) => format!("the API server {url}"),
        None => "the API server".to_string(),
    };
    if *answered {
        format!("lost the connection to {server}: {reason}")
    } else {
        format!(
            "cannot reach {server}: {reason}\n  help: check --kubeconfig/--context and that the \
             cluster is running"
        )
    }
}

/// A failure to get any HTTP answer at all (no status, no body): connecting, TLS, or the
/// connection breaking. kube reports the transport's errors as these two.
pub fn is_transport_error(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// Whether the server answered (with a success, a refusal, or a body kube could not use).
fn is_answer(e: &kube::Error) -> bool {
    matches!(
        e,
        kube::Error::Api(_) | kube::Error::SerdeError(_) | kube::Error::Discovery(_)
    )
}

/// A transport failure in a few words: `connection refused`, `no connection within 5s`,
/// `TLS handshake failed: ...`, or the innermost cause (a DNS error says what it could not
/// resolve).
pub fn connection_reason(e: &kube::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    let mut io: Option<&std::io::Error> = None;
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<std::io::Error>() {
            io = Some(found);
        }
        innermost = cause;
        next = cause.source();
    }
    match io.map(|io| (io.kind(), io)) {
        Some((std::io::ErrorKind::ConnectionRefused, _)) => "connection refused".to_string(),
        Some((std::io::ErrorKind::TimedOut, _)) => {
            format!("no connection within {CONNECT_TIMEOUT:?}")
        }
        Some((std::io::ErrorKind::ConnectionReset, _)) => "connection reset".to_string(),
        Some((std::io::ErrorKind::InvalidData, io)) => format!("TLS handshake failed: {io}"),
        _ => innermost.to_string(),
    }
}

/// A URL as a user wrote it: `https://127.0.0.1:6443`, without the `/` that `Uri` adds.
pub fn server_url(uri: &http::Uri) -> String {
    let text = uri.to_string();
    match text.strip_suffix('/') {
        Some(bare) if uri.path() == "/" && uri.query().is_none() => bare.to_string(),
        _ => text,
    }
}

/// Where a kubeconfig's YAML fails to parse, as ` at line L, column C`: the parser's own
/// message is never shown, since it quotes the lines around the error, and those hold tokens
/// and keys.
pub fn yaml_error_position(e: &kube::config::KubeconfigError) -> String {
    match e {
        kube::config::KubeconfigError::Parse(yaml) => yaml
            .location()
            .map(|at| format!(" at line {}, column {}", at.line(), at.column()))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A kubeconfig given as YAML that cannot be used; a syntax error says only where it is.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigTextError {
    #[error(
        "the kubeconfig does not parse{position} (the parser's message is not shown: it would quote credentials)"
    )]
    Syntax { position: String },
    #[error("the kubeconfig cannot be used")]
    Config(#[source] kube::Error),
}

/// A client for the current context of a kubeconfig given as YAML (a workload cluster's, from
/// its Secret), connecting within [`CONNECT_TIMEOUT`].
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, KubeconfigTextError> {
    client_and_server_from_kubeconfig(yaml)
        .await
        .map(|(client, _)| client)
}

/// [`client_from_kubeconfig`] and the URL of its server, for
/// [`KubeClusterApi::with_server`](crate::apply::api::KubeClusterApi::with_server) and
/// [`DynamicApi::with_server`], whose errors then name it.
pub async fn client_and_server_from_kubeconfig(
    yaml: &str,
) -> Result<(kube::Client, String), KubeconfigTextError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| KubeconfigTextError::Syntax {
        position: yaml_error_position(&e),
    })?;
    let config = config_from_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeconfigTextError::Config(kube::Error::InferKubeconfig(e)))?;
    let server = server_url(&config.cluster_url);
    let client = kube::Client::try_from(config).map_err(KubeconfigTextError::Config)?;
    Ok((client, server))
}

/// kube's client configuration for a context of `kubeconfig`, with cairn's connect timeout.
pub async fn config_from_kubeconfig(
    kubeconfig: Kubeconfig,
    options: &KubeConfigOptions,
) -> Result<kube::Config, kube::config::KubeconfigError> {
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, options).await?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Ok(config)
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

/// Any kind, by apiVersion and kind, through one client. It remembers whether its server has
/// ever answered: a connection failure before that is [`KubeError::Unreachable`] with
/// `answered: false`, which callers do not retry.
pub struct DynamicApi {
    client: kube::Client,
    server: Option<String>,
    answered: AtomicBool,
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
    /// Over `client`; its errors call the server "the API server" (prefer
    /// [`with_server`](Self::with_server)).
    pub fn new(client: kube::Client) -> DynamicApi {
        DynamicApi {
            client,
            server: None,
            answered: AtomicBool::new(false),
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// Over `client` of the API server at `server` (a URL, named in connection errors).
    pub fn with_server(client: kube::Client, server: impl Into<String>) -> DynamicApi {
        DynamicApi {
            server: Some(server.into()),
            ..DynamicApi::new(client)
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The same API, every request made as `user` (`Impersonate-User`), with the same
    /// credentials and connection; the caller's account needs `impersonate` on that user.
    pub fn impersonating(&self, user: &str) -> Result<DynamicApi, KubeError> {
        let value = http::HeaderValue::from_str(user).map_err(|_| KubeError::Impersonate {
            user: user.to_string(),
        })?;
        let inner = self.client.clone();
        let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
            let inner = inner.clone();
            request
                .headers_mut()
                .insert("impersonate-user", value.clone());
            async move { inner.send(request).await }
        });
        let client = kube::Client::new(service, self.client.default_namespace());
        Ok(DynamicApi {
            server: self.server.clone(),
            ..DynamicApi::new(client)
        })
    }

    /// The URL of the API server, when the creator said it.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Whether the server has answered any request made through this API.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Notes an answer of the server (a success or an HTTP refusal).
    fn observe<T>(&self, result: &Result<T, kube::Error>) {
        if result.as_ref().err().is_none_or(is_answer) {
            self.answered.store(true, Ordering::Relaxed);
        }
    }

    /// [`KubeError::Unreachable`] for a transport failure, else `otherwise(e)`.
    fn failure(
        &self,
        e: kube::Error,
        otherwise: impl FnOnce(kube::Error) -> KubeError,
    ) -> KubeError {
        if is_transport_error(&e) {
            KubeError::Unreachable {
                server: self.server.clone(),
                reason: connection_reason(&e),
                answered: self.has_answered(),
                cause: Box::new(e),
            }
        } else {
            otherwise(e)
        }
    }

    /// The result of a request about `object`, with its failure as a [`KubeError`].
    fn settle<T>(
        &self,
        result: Result<T, kube::Error>,
        object: impl FnOnce() -> String,
        verb: &'static str,
    ) -> Result<T, KubeError> {
        self.observe(&result);
        result.map_err(|e| {
            self.failure(e, |source| KubeError::Request {
                object: object(),
                verb,
                source,
            })
        })
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
        let found = pinned_kind(&self.client, &GroupVersionKind::gvk(group, version, kind)).await;
        self.observe(&found);
        let found = found?;
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
        self.resource(api_version, kind).await.map_err(|e| {
            // A server that cannot be reached does not say which kinds it serves.
            self.failure(e, |source| KubeError::UnknownKind {
                object,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                source,
            })
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
        let applied = api.patch(&name, &params, &Patch::Apply(obj)).await;
        self.settle(applied, || object_ref(obj), verb).map(to_json)
    }

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, obj: &Value) -> Result<Option<Value>, KubeError> {
        let (api, name) = self.api_for(obj).await?;
        let found = self.settle(api.get_opt(&name).await, || object_ref(obj), "get")?;
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
        let list = self.settle(
            api.list(&params).await,
            || all_of_kind(kind, namespace),
            "list",
        )?;
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
        let patched = api
            .patch(&name, &merge_params(field_manager), &Patch::Merge(patch))
            .await;
        self.settle(patched, || object_ref(obj), "patch")
            .map(to_json)
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
        let patched = api
            .patch_status(&name, &merge_params(field_manager), &Patch::Merge(&patch))
            .await;
        self.settle(patched, || object_ref(obj), "patch status")
            .map(to_json)
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
        match self.settle(
            api.create(&params, &object).await,
            || object_ref(obj),
            "create",
        ) {
            Ok(created) => return Ok(to_json(created)),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
        let existing = self.settle(api.get(&name).await, || object_ref(obj), "get")?;
        let mut replacement = object;
        replacement.metadata.uid = existing.metadata.uid;
        replacement.metadata.resource_version = existing.metadata.resource_version;
        let replaced = api.replace(&name, &params, &replacement).await;
        self.settle(replaced, || object_ref(obj), "replace")
            .map(to_json)
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
        let api_group = kube::discovery::group(&self.client, group).await;
        self.observe(&api_group);
        let api_group = api_group.map_err(|e| {
            self.failure(e, |source| KubeError::UnknownKind {
                object: what.clone(),
                api_version: group.to_string(),
                kind: kind.to_string(),
                source,
            })
        })?;
        let Some((resource, caps)) = api_group.recommended_kind(kind) else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        let found = self.settle(api.get_opt(name).await, || what.clone(), "get")?;
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
        match self.settle(
            api.delete(&name, &params).await,
            || object_ref(obj),
            "delete",
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            // The uid precondition failed: the object was replaced by another of the same name.
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(kind: std::io::ErrorKind) -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::new(kind, "os says so")))
    }

    fn unreachable(server: Option<&str>, answered: bool) -> KubeError {
        KubeError::Unreachable {
            server: server.map(str::to_string),
            reason: "connection refused".into(),
            answered,
            cause: Box::new(transport(std::io::ErrorKind::ConnectionRefused)),
        }
    }

    #[test]
    fn server_urls_read_as_written() {
        for url in [
            "https://127.0.0.1:6443",
            "https://api.example.com",
            "https://10.0.0.1:6443/k8s/clusters/c-1",
        ] {
            assert_eq!(server_url(&url.parse().unwrap()), url);
        }
        assert_eq!(server_url(&"https://h:1/".parse().unwrap()), "https://h:1");
    }

    #[test]
    fn connection_failures_read_in_a_few_words() {
        use std::io::ErrorKind;
        assert_eq!(
            connection_reason(&transport(ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(
            connection_reason(&transport(ErrorKind::TimedOut)),
            "no connection within 5s"
        );
        assert_eq!(
            connection_reason(&transport(ErrorKind::InvalidData)),
            "TLS handshake failed: os says so"
        );
        assert_eq!(
            connection_reason(&transport(ErrorKind::Other)),
            "os says so"
        );
        assert!(is_transport_error(&transport(ErrorKind::Other)));
        assert!(!is_transport_error(&kube::Error::TlsRequired));
    }

    #[test]
    fn an_unreachable_server_is_named_with_what_to_do() {
        assert_eq!(
            unreachable(Some("https://127.0.0.1:1"), false).to_string(),
            "cannot reach the API server https://127.0.0.1:1: connection refused\n  help: check \
             --kubeconfig/--context and that the cluster is running"
        );
        assert!(
            unreachable(None, false)
                .to_string()
                .starts_with("cannot reach the API server: connection refused")
        );
        assert_eq!(
            unreachable(Some("https://h:1"), true).to_string(),
            "lost the connection to the API server https://h:1: connection refused"
        );
    }

    fn refused(code: u16) -> KubeError {
        KubeError::Request {
            object: "ConfigMap/default/x".into(),
            verb: "get",
            source: kube::Error::Api(
                kube::core::Status::failure("refused", "Because")
                    .with_code(code)
                    .boxed(),
            ),
        }
    }

    #[test]
    fn status_codes_are_told_apart() {
        assert!(refused(404).is_not_found());
        assert!(!refused(404).is_conflict());
        assert!(refused(409).is_conflict());
        assert!(!refused(409).is_not_found());
        assert_eq!(refused(500).status_code(), Some(500));
        assert!(!unreachable(None, false).is_not_found());
        assert!(unreachable(None, false).is_unreachable());
        assert_eq!(unreachable(None, false).status_code(), None);
    }
}
