//! Webhooks that reach a follower. The Service in front of the replicas sends a push webhook to
//! any of them, but only the leader reconciles: a follower that accepts one writes the time into
//! the Lease's `cairn.dev/fetch-requested` annotation, and the leader, which reads the Lease at
//! every renewal, fetches when that annotation changes. The Lease is the one object every
//! replica may already write, so this needs no extra permission and no replica addresses.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;

use super::leader::FETCH_REQUEST_ANNOTATION;
use super::shared::Shared;

/// Relays until `shutdown` resolves: pushes a follower accepts go into the Lease; requests the
/// leader reads there trigger its fetch.
pub async fn relay(
    lease: Api<Lease>,
    name: String,
    shared: Arc<Shared>,
    leading: watch::Receiver<bool>,
    mut requests: watch::Receiver<Option<String>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut pushes = shared.pushes();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            changed = pushes.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*leading.borrow() {
                    request_fetch(&lease, &name).await;
                }
            }
            changed = requests.changed() => {
                if changed.is_err() {
                    return;
                }
                if *leading.borrow() {
                    tracing::info!("a follower received a push webhook: fetching now");
                    shared.trigger();
                }
            }
        }
    }
}

/// Writes the fetch request into the Lease (a merge patch: it never touches the holder's spec).
async fn request_fetch(lease: &Api<Lease>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {FETCH_REQUEST_ANNOTATION: now}}});
    let params = PatchParams::default();
    match lease.patch(name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!(lease = name, "push webhook relayed to the leader"),
        Err(e) => tracing::warn!(
            lease = name,
            "cannot relay a push webhook to the leader (it fetches at its next poll): {e}"
        ),
    }
}
