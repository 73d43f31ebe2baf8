//! Waiting until objects are healthy, with a timeout that names every object still unready and
//! why. The predicates live in `health`; this file only polls.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{ApiError, ClusterApi, is_transient};
use super::health::{Health, health};
use crate::render::kinds::object_ref;

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited:?}; still not ready:\n{}", .unready.iter().map(|u| format!("  - {u}")).collect::<Vec<_>>().join("\n"))]
    Timeout {
        waited: Duration,
        unready: Vec<String>,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A failure that retrying may cure: a transient one, or transient ones until the retry budget
/// of a single request was spent.
fn is_transient_api(e: &ApiError) -> bool {
    match e {
        ApiError::Kube(e) => is_transient(e),
        ApiError::Exhausted { .. } => true,
        ApiError::Conflict { .. } => false,
    }
}

const POLL: Duration = Duration::from_millis(250);

/// Polls until every object is Ready; `Failed` objects keep being polled (they may recover) and
/// are named with their failure when time runs out.
pub async fn wait_healthy(
    api: &impl ClusterApi,
    objects: &[Value],
    timeout: Duration,
) -> Result<(), WaitError> {
    wait_until(api, objects, timeout, health).await
}

/// Polls until `check` says Ready for every object (absent objects are not ready).
pub async fn wait_until<F>(
    api: &impl ClusterApi,
    objects: &[Value],
    timeout: Duration,
    check: F,
) -> Result<(), WaitError>
where
    F: Fn(&Value) -> Health,
{
    poll_until(timeout, || async {
        let mut unready = Vec::new();
        for obj in objects {
            let live = match api.get(obj).await {
                Ok(live) => live,
                // The server is restarting or overloaded: not ready yet, within the timeout.
                Err(e) if is_transient_api(&e) => {
                    unready.push(format!(
                        "{}: cannot be read: {}",
                        object_ref(obj),
                        crate::errors::chain(&e)
                    ));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match live {
                None => unready.push(format!("{}: does not exist", object_ref(obj))),
                Some(live) => match check(&live) {
                    Health::Ready => {}
                    Health::InProgress(why) => unready.push(format!("{}: {why}", object_ref(obj))),
                    Health::Failed(why) => {
                        unready.push(format!("{}: failed: {why}", object_ref(obj)))
                    }
                },
            }
        }
        Ok(unready)
    })
    .await
}

/// Calls `probe` until it finds nothing unready, every [`POLL`], and fails naming what it
/// found last once `timeout` has passed.
pub async fn poll_until<F, Fut>(timeout: Duration, mut probe: F) -> Result<(), WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, WaitError>>,
{
    let start = Instant::now();
    loop {
        let unready = probe().await?;
        if unready.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(WaitError::Timeout {
                waited: timeout,
                unready,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::json;

    use super::*;
    use crate::kube_client::KubeError;

    /// Unreachable (its retry budget spent) for the first `down` reads, then Ready.
    struct Flaky {
        down: u32,
        reads: AtomicU32,
        fatal: bool,
    }

    impl Flaky {
        fn error(&self) -> ApiError {
            if self.fatal {
                return ApiError::Kube(KubeError::Malformed {
                    object: "ConfigMap/x".into(),
                });
            }
            ApiError::Exhausted {
                object: "ConfigMap/x".into(),
                attempts: 3,
                waited: Duration::ZERO,
                last: KubeError::Timeout {
                    waited: Duration::ZERO,
                    pending: "the server".into(),
                },
            }
        }
    }

    impl ClusterApi for Flaky {
        fn impersonating(&self, _: &str) -> Result<Flaky, ApiError> {
            unreachable!()
        }
        async fn dry_run(&self, _: &Value) -> Result<Value, ApiError> {
            unreachable!()
        }
        async fn apply(&self, _: &Value) -> Result<Value, ApiError> {
            unreachable!()
        }
        async fn get(&self, obj: &Value) -> Result<Option<Value>, ApiError> {
            if self.reads.fetch_add(1, Ordering::Relaxed) < self.down {
                return Err(self.error());
            }
            Ok(Some(obj.clone()))
        }
        async fn list(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<Vec<Value>, ApiError> {
            unreachable!()
        }
        async fn delete(&self, _: &Value) -> Result<bool, ApiError> {
            unreachable!()
        }
        async fn merge_patch(&self, _: &Value, _: &Value) -> Result<Value, ApiError> {
            unreachable!()
        }
        async fn create_or_replace(&self, _: &Value) -> Result<Value, ApiError> {
            unreachable!()
        }
    }

    fn config_map() -> Vec<Value> {
        vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})]
    }

    #[tokio::test]
    async fn an_unreachable_server_is_not_ready_yet_within_the_timeout() {
        let api = Flaky {
            down: 2,
            reads: AtomicU32::new(0),
            fatal: false,
        };
        wait_healthy(&api, &config_map(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(api.reads.load(Ordering::Relaxed), 3);

        let api = Flaky {
            down: u32::MAX,
            reads: AtomicU32::new(0),
            fatal: false,
        };
        let err = wait_healthy(&api, &config_map(), Duration::ZERO)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ConfigMap/x: cannot be read"), "{err}");
    }

    #[tokio::test]
    async fn a_refusal_ends_the_wait() {
        let api = Flaky {
            down: u32::MAX,
            reads: AtomicU32::new(0),
            fatal: true,
        };
        let err = wait_healthy(&api, &config_map(), Duration::from_secs(60)).await;
        assert!(matches!(err, Err(WaitError::Api(_))), "{err:?}");
    }
}
