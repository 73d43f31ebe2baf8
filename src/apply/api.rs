//! `ClusterApi`: the few verbs apply and diff need, over kube, with retries, a timeout and a
//! count of every request and write (so tests can prove a converged apply writes nothing).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kube_client::{DynamicApi, KubeError};
use crate::render::kinds::object_ref;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(
        "{object}: field conflict with another manager: {message}\n  help: another tool owns these fields; \
         rerun with --force-conflicts to take them over"
    )]
    Conflict { object: String, message: String },
    #[error("{object}: gave up after {attempts} attempts over {waited:?}: {last}")]
    Exhausted {
        object: String,
        attempts: u32,
        waited: Duration,
        last: KubeError,
    },
}

impl ApiError {
    /// The server answered 404 Not Found: the object (or its namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Kube(e) if e.is_not_found())
    }

    /// The server answered 409 Conflict: a field conflict of server-side apply
    /// ([`ApiError::Conflict`]), an object that already exists, or a failed precondition.
    pub fn is_conflict(&self) -> bool {
        match self {
            ApiError::Conflict { .. } => true,
            ApiError::Kube(e) => e.is_conflict(),
            ApiError::Exhausted { .. } => false,
        }
    }

    /// The server does not serve the object's kind (its CRD is not installed).
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, ApiError::Kube(KubeError::UnknownKind { .. }))
    }

    /// No connection could be made to the API server (which may never have answered).
    pub fn is_unreachable(&self) -> bool {
        match self {
            ApiError::Kube(e) | ApiError::Exhausted { last: e, .. } => e.is_unreachable(),
            ApiError::Conflict { .. } => false,
        }
    }
}

/// What apply and diff need from a cluster.
pub trait ClusterApi: Send + Sync {
    /// What server-side apply would make of `obj`, without writing it.
    fn dry_run(&self, obj: &Value) -> impl Future<Output = Result<Value, ApiError>> + Send;
    /// Server-side apply as field manager `cairn`.
    fn apply(&self, obj: &Value) -> impl Future<Output = Result<Value, ApiError>> + Send;
    fn get(&self, obj: &Value) -> impl Future<Output = Result<Option<Value>, ApiError>> + Send;
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Value>, ApiError>> + Send;
    /// Deletes the object; false when it was already gone.
    fn delete(&self, obj: &Value) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// A JSON merge patch under field manager `cairn-phase`, for bookkeeping (phase
    /// annotations) that server-side apply of the rendered object must not own or remove.
    fn merge_patch(
        &self,
        obj: &Value,
        patch: &Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;
    /// Creates the object as it is given (uid, resourceVersion and status dropped by the
    /// caller), or replaces the one of that name: the verb of a move.
    fn create_or_replace(
        &self,
        obj: &Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;
    /// The same cluster, every request made as `user` (a ServiceAccount a layer names).
    fn impersonating(&self, user: &str) -> Result<Self, ApiError>
    where
        Self: Sized;
}

/// Field manager of the objects a move creates.
pub const MOVE_MANAGER: &str = "cairn-mover";

/// Field manager of cairn's bookkeeping writes.
pub const PHASE_MANAGER: &str = "cairn-phase";

/// Request and write counts, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
}

/// Backoff of transient failures: 200 ms doubling to 5 s, within `budget`.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
    pub budget: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            budget: Duration::from_secs(60),
        }
    }
}

/// A connection failure before the server ever answered is retried once, after this, when it
/// came quickly (refused, not timed out): a server that is just starting gets a second chance.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(1);

/// `ClusterApi` over a kube client. Transient failures of a server that has answered are retried
/// within the [`Retry`] budget; a server that never answered fails at once as
/// [`KubeError::Unreachable`] (after at most one quick retry).
pub struct KubeClusterApi {
    api: DynamicApi,
    force_conflicts: bool,
    retry: Retry,
    pub counters: Counters,
}

impl KubeClusterApi {
    /// Over `client`; connection errors say "the API server" (prefer
    /// [`with_server`](Self::with_server), which names it).
    pub fn new(client: kube::Client, force_conflicts: bool) -> KubeClusterApi {
        KubeClusterApi::over(DynamicApi::new(client), force_conflicts)
    }

    /// Over `client` of the API server at `server` (its URL, as `Config::cluster_url` has it;
    /// see [`crate::kube_client::server_url`]), which connection errors name.
    pub fn with_server(
        client: kube::Client,
        server: impl Into<String>,
        force_conflicts: bool,
    ) -> KubeClusterApi {
        KubeClusterApi::over(DynamicApi::with_server(client, server), force_conflicts)
    }

    fn over(api: DynamicApi, force_conflicts: bool) -> KubeClusterApi {
        KubeClusterApi {
            api,
            force_conflicts,
            retry: Retry::default(),
            counters: Counters::default(),
        }
    }

    /// The URL of the API server, when the creator said it.
    pub fn server(&self) -> Option<&str> {
        self.api.server()
    }

    pub fn with_retry(mut self, retry: Retry) -> KubeClusterApi {
        self.retry = retry;
        self
    }

    pub fn dynamic(&self) -> &DynamicApi {
        &self.api
    }

    /// Runs `call` until it succeeds, fails for good, or the retry budget is spent.
    async fn retrying<T, F, Fut>(&self, obj: &Value, write: bool, call: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, KubeError>>,
    {
        let start = Instant::now();
        let mut delay = self.retry.first;
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if write {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
            }
            let attempt = Instant::now();
            match call().await {
                Ok(v) => return Ok(v),
                // Never answered: a wrong kubeconfig or a cluster that is down. One quick retry
                // for a server that is just starting, then the error, naming the server.
                Err(KubeError::Unreachable {
                    answered: false, ..
                }) if attempts == 1 && attempt.elapsed() < UNREACHABLE_RETRY => {
                    tracing::debug!("{}: the API server refused, retrying once", object_ref(obj));
                    tokio::time::sleep(UNREACHABLE_RETRY).await;
                }
                Err(e) if e.is_conflict() => {
                    return Err(ApiError::Conflict {
                        object: object_ref(obj),
                        message: api_message(&e).unwrap_or_default(),
                    });
                }
                Err(e) if !is_transient(&e) => return Err(e.into()),
                // A 500 is often a refusal in disguise (say, undecodable Secret data): retry
                // it a little, not for the whole budget.
                Err(e) if is_internal_error(&e) && attempts >= 3 => return Err(e.into()),
                Err(e) if start.elapsed() + delay > self.retry.budget => {
                    return Err(ApiError::Exhausted {
                        object: object_ref(obj),
                        attempts,
                        waited: start.elapsed(),
                        last: e,
                    });
                }
                Err(e) => {
                    tracing::debug!(
                        "{}: retrying after {delay:?}: {}",
                        object_ref(obj),
                        crate::errors::chain(&e)
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max);
                }
            }
        }
    }
}

fn kube_source(e: &KubeError) -> Option<&kube::Error> {
    match e {
        KubeError::Request { source, .. } | KubeError::UnknownKind { source, .. } => Some(source),
        _ => None,
    }
}

fn api_message(e: &KubeError) -> Option<String> {
    match kube_source(e)? {
        kube::Error::Api(status) => Some(status.message.clone()),
        _ => None,
    }
}

/// The field managers a server-side apply conflict names: `conflict with "kubectl-edit" ...`,
/// or `conflicts with "x" using ...:` followed by a list of fields when one manager owns many.
pub fn conflicting_managers(message: &str) -> Vec<String> {
    let mut managers: Vec<String> = message
        .split(" with \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    managers.dedup();
    managers
}

/// Whether `manager` only ever wrote `obj` imperatively (operation `Update`).
fn is_imperative(obj: &Value, manager: &str) -> bool {
    let entries: Vec<&Value> = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter(|e| e["manager"] == manager).collect())
        .unwrap_or_default();
    !entries.is_empty() && entries.iter().all(|e| e["operation"] == "Update")
}

fn is_internal_error(e: &KubeError) -> bool {
    e.status_code() == Some(500)
}

/// Network failures of a server that has answered before, throttling and server errors are
/// worth retrying; a refusal is not, and neither is a server that never answered.
pub fn is_transient(e: &KubeError) -> bool {
    if let KubeError::Unreachable { answered, .. } = e {
        return *answered;
    }
    match kube_source(e) {
        Some(kube::Error::Api(status)) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        Some(kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::Discovery(_)) => {
            true
        }
        Some(_) => false,
        None => false,
    }
}

impl ClusterApi for KubeClusterApi {
    fn impersonating(&self, user: &str) -> Result<KubeClusterApi, ApiError> {
        let api = self.api.impersonating(user)?;
        Ok(KubeClusterApi::over(api, self.force_conflicts).with_retry(self.retry))
    }

    async fn dry_run(&self, obj: &Value) -> Result<Value, ApiError> {
        // Forced, so the diff shows what apply ends with even where it takes fields over (by
        // hand edits always; other appliers' fields with --force-conflicts).
        self.retrying(obj, false, || self.api.apply(obj, true, true))
            .await
    }

    async fn apply(&self, obj: &Value) -> Result<Value, ApiError> {
        let first = self
            .retrying(obj, true, || {
                self.api.apply(obj, false, self.force_conflicts)
            })
            .await;
        let Err(ApiError::Conflict { message, .. }) = &first else {
            return first;
        };
        // Fields changed by hand (`kubectl edit`, `scale`, `patch`: Update operations) are
        // drift, and git wins; a conflict with another *applier* is a real disagreement that
        // only --force-conflicts settles.
        let live = self.get(obj).await?;
        let managers = conflicting_managers(message);
        if live
            .is_some_and(|l| !managers.is_empty() && managers.iter().all(|m| is_imperative(&l, m)))
        {
            return self
                .retrying(obj, true, || self.api.apply(obj, false, true))
                .await;
        }
        first
    }

    async fn get(&self, obj: &Value) -> Result<Option<Value>, ApiError> {
        self.retrying(obj, false, || self.api.get(obj)).await
    }

    async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let what =
            serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "*"}});
        self.retrying(&what, false, || {
            self.api.list(api_version, kind, namespace, label_selector)
        })
        .await
    }

    async fn delete(&self, obj: &Value) -> Result<bool, ApiError> {
        self.retrying(obj, true, || self.api.delete(obj)).await
    }

    async fn merge_patch(&self, obj: &Value, patch: &Value) -> Result<Value, ApiError> {
        self.retrying(obj, true, || {
            self.api.merge_patch(obj, patch, PHASE_MANAGER)
        })
        .await
    }

    async fn create_or_replace(&self, obj: &Value) -> Result<Value, ApiError> {
        self.retrying(obj, true, || self.api.create_or_replace(obj, MOVE_MANAGER))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::AtomicU32;

    /// A client of nothing (requests would be refused; these tests make none through it).
    fn api() -> KubeClusterApi {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        KubeClusterApi::with_server(
            kube::Client::try_from(config).unwrap(),
            "https://127.0.0.1:1",
            false,
        )
        .with_retry(Retry {
            first: Duration::from_millis(10),
            max: Duration::from_millis(20),
            budget: Duration::from_millis(300),
        })
    }

    fn unreachable(answered: bool) -> KubeError {
        KubeError::Unreachable {
            server: Some("https://127.0.0.1:1".into()),
            reason: "connection refused".into(),
            answered,
            cause: Box::new(kube::Error::Service(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))),
        }
    }

    fn refused(code: u16) -> KubeError {
        KubeError::Request {
            object: "ConfigMap/default/x".into(),
            verb: "get",
            source: kube::Error::Api(
                kube::core::Status::failure("no", "Because")
                    .with_code(code)
                    .boxed(),
            ),
        }
    }

    /// How many calls `retrying` makes when every call fails with `error`.
    async fn calls_until_given_up(error: fn() -> KubeError) -> (u32, ApiError) {
        let api = api();
        let calls = AtomicU32::new(0);
        let e = api
            .retrying(
                &json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
                false,
                || {
                    calls.fetch_add(1, Ordering::Relaxed);
                    async move { Err::<(), _>(error()) }
                },
            )
            .await
            .unwrap_err();
        (calls.load(Ordering::Relaxed), e)
    }

    #[tokio::test]
    async fn a_server_that_never_answered_is_retried_once_at_most() {
        let start = Instant::now();
        let (calls, e) = calls_until_given_up(|| unreachable(false)).await;
        assert_eq!(calls, 2);
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(e.is_unreachable());
        assert!(
            matches!(e, ApiError::Kube(KubeError::Unreachable { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("https://127.0.0.1:1"), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_answered_before_is_retried_within_the_budget() {
        let (calls, e) = calls_until_given_up(|| unreachable(true)).await;
        assert!(calls > 3, "{calls} calls");
        assert!(matches!(e, ApiError::Exhausted { .. }), "{e}");
        assert!(e.is_unreachable());
    }

    #[tokio::test]
    async fn refusals_are_not_retried_and_conflicts_are_named() {
        let (calls, e) = calls_until_given_up(|| refused(404)).await;
        assert_eq!(calls, 1);
        assert!(e.is_not_found() && !e.is_conflict(), "{e}");
        let (calls, e) = calls_until_given_up(|| refused(409)).await;
        assert_eq!(calls, 1);
        assert!(matches!(e, ApiError::Conflict { .. }), "{e}");
        assert!(e.is_conflict() && !e.is_not_found(), "{e}");
    }

    #[test]
    fn only_a_server_that_answered_is_transient_when_unreachable() {
        assert!(is_transient(&unreachable(true)));
        assert!(!is_transient(&unreachable(false)));
        assert!(is_transient(&refused(503)));
        assert!(!is_transient(&refused(404)));
        assert!(ApiError::Kube(refused(409)).is_conflict());
        assert!(!ApiError::Kube(refused(500)).is_unreachable());
    }

    #[test]
    fn conflict_messages_name_their_managers() {
        let message = r#"Apply failed with 2 conflicts: conflict with "kubectl-edit" using apps/v1: .spec.replicas, conflict with "flux" using apps/v1: .spec.template"#;
        assert_eq!(conflicting_managers(message), vec!["kubectl-edit", "flux"]);
        let one_manager = "Apply failed with 2 conflicts: conflicts with \"cairn-mover\" using controlplane.cluster.x-k8s.io/v1beta2:\n- .metadata.labels.cairn.dev/stage\n- .spec.replicas";
        assert_eq!(conflicting_managers(one_manager), vec!["cairn-mover"]);
        assert!(conflicting_managers("no conflicts here").is_empty());
    }

    #[test]
    fn only_update_operations_count_as_imperative() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "kubectl-edit", "operation": "Update"},
            {"manager": "flux", "operation": "Apply"},
        ]}});
        assert!(is_imperative(&obj, "kubectl-edit"));
        assert!(!is_imperative(&obj, "flux"));
        assert!(!is_imperative(&obj, "nobody"));
    }
}
