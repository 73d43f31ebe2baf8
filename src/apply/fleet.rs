//! Many clusters at once: bounded concurrency, one failing cluster never stops the others, and
//! a per-cluster outcome for the summary.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::api::KubeClusterApi;
use super::cluster::{ApplyOptions, ClusterReport, apply_cluster, diff_cluster};
use crate::diff::plan::Plan;
use crate::render::Bundle;

/// The outcome of one cluster.
pub struct Outcome<T> {
    pub cluster: String,
    pub result: Result<T, String>,
}

/// Runs `work` for every bundle, at most `concurrency` at a time, in bundle order.
async fn for_each<T, F, Fut>(bundles: Vec<Bundle>, concurrency: usize, work: F) -> Vec<Outcome<T>>
where
    T: Send + 'static,
    F: Fn(Bundle) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for bundle in bundles {
        let permits = permits.clone();
        let work = work.clone();
        let cluster = bundle.cluster.clone();
        tasks.push((
            cluster,
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                work(bundle).await
            }),
        ));
    }
    let mut out = Vec::new();
    for (cluster, task) in tasks {
        let result = task
            .await
            .unwrap_or_else(|e| Err(format!("internal error: {e}")));
        out.push(Outcome { cluster, result });
    }
    out
}

pub async fn apply_fleet(
    mgmt: Arc<KubeClusterApi>,
    bundles: Vec<Bundle>,
    opts: ApplyOptions,
    concurrency: usize,
) -> Vec<Outcome<ClusterReport>> {
    for_each(bundles, concurrency, move |bundle| {
        let mgmt = mgmt.clone();
        let opts = opts.clone();
        async move {
            (opts.progress)(&bundle.cluster, "applying the bootstrap stage");
            apply_cluster(&mgmt, &bundle, &opts)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

pub async fn diff_fleet(
    mgmt: Arc<KubeClusterApi>,
    bundles: Vec<Bundle>,
    prune: bool,
    concurrency: usize,
) -> Vec<Outcome<Plan>> {
    for_each(bundles, concurrency, move |bundle| {
        let mgmt = mgmt.clone();
        async move {
            diff_cluster(&mgmt, &bundle, prune)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}
