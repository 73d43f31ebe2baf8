//! `ClusterApi`: the few verbs apply and diff need, over kube, with retries, a timeout and a
//! count of every request and write (so tests can prove a converged apply writes nothing).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// `ClusterApi` over a kube client.
pub struct KubeClusterApi {
    api: DynamicApi,
    force_conflicts: bool,
    retry: Retry,
    pub counters: Counters,
}

impl KubeClusterApi {
    pub fn new(client: kube::Client, force_conflicts: bool) -> KubeClusterApi {
        KubeClusterApi {
            api: DynamicApi::new(client),
            force_conflicts,
            retry: Retry::default(),
            counters: Counters::default(),
        }
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
        let start = std::time::Instant::now();
        let mut delay = self.retry.first;
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if write {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
            }
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if is_conflict(&e) => {
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
                    tracing::debug!("{}: retrying after {delay:?}: {e}", object_ref(obj));
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

fn is_conflict(e: &KubeError) -> bool {
    matches!(kube_source(e), Some(kube::Error::Api(status)) if status.code == 409)
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
    matches!(kube_source(e), Some(kube::Error::Api(status)) if status.code == 500)
}

/// Network failures, throttling and server errors are worth retrying; a refusal is not.
pub fn is_transient(e: &KubeError) -> bool {
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
