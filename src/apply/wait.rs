//! Waiting until objects are healthy, with a timeout that names every object still unready and
//! why. The predicates live in `health`; this file only polls.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{ApiError, ClusterApi};
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

const POLL: Duration = Duration::from_millis(250);

/// Polls until every object is Ready; `Failed` objects keep being polled (they may recover) and
/// are named with their failure when time runs out.
pub async fn wait_healthy(
    api: &impl ClusterApi,
    objects: &[Value],
    timeout: Duration,
) -> Result<(), WaitError> {
    wait_until(api, objects, timeout, |live| health(live)).await
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
    let start = Instant::now();
    loop {
        let mut unready = Vec::new();
        for obj in objects {
            match api.get(obj).await? {
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
