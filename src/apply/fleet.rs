//! Many clusters at once: bounded concurrency, one failing cluster never stops the others, and
//! a per-cluster outcome for the summary.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::api::KubeClusterApi;
use super::cluster::{ApplyOptions, ClusterReport, apply_cluster, diff_cluster};
use super::removal::remove_cluster;
use crate::diff::plan::Plan;
use crate::render::Bundle;

/// The outcome of one cluster.
pub struct Outcome<T> {
    pub cluster: String,
    pub result: Result<T, String>,
}

/// Runs `work` for every item (named by its cluster), at most `concurrency` at a time, in order.
async fn for_each<I, T, F, Fut>(
    items: Vec<(String, I)>,
    concurrency: usize,
    work: F,
) -> Vec<Outcome<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for (cluster, item) in items {
        let permits = permits.clone();
        let work = work.clone();
        tasks.push((
            cluster,
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                work(item).await
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

fn named(bundles: Vec<Bundle>) -> Vec<(String, Bundle)> {
    bundles
        .into_iter()
        .map(|b| (b.cluster.clone(), b))
        .collect()
}

/// Deletes the clusters that left the repository (reverse-pivoting those that pivoted).
pub async fn remove_departed(
    mgmt: Arc<KubeClusterApi>,
    departed: Vec<String>,
    opts: ApplyOptions,
    concurrency: usize,
) -> Vec<Outcome<()>> {
    let items = departed.into_iter().map(|n| (n.clone(), n)).collect();
    for_each(items, concurrency, move |name| {
        let mgmt = mgmt.clone();
        let opts = opts.clone();
        async move {
            remove_cluster(&mgmt, &name, &opts)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

pub async fn apply_fleet(
    mgmt: Arc<KubeClusterApi>,
    bundles: Vec<Bundle>,
    opts: ApplyOptions,
    concurrency: usize,
) -> Vec<Outcome<ClusterReport>> {
    for_each(named(bundles), concurrency, move |bundle| {
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
    for_each(named(bundles), concurrency, move |bundle| {
        let mgmt = mgmt.clone();
        async move {
            diff_cluster(&mgmt, &bundle, prune)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}
