//! Many clusters at once: bounded concurrency, one failing cluster never stops the others, and
//! a per-cluster outcome for the summary.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::cluster::apply_cluster;
use super::removal::remove_cluster;
use super::{ApplyOptions, ClusterError, ClusterReport};
use crate::apply::api::KubeClusterApi;
use crate::render::Bundle;

/// The outcome of one cluster.
pub struct Outcome<T> {
    pub cluster: String,
    pub result: Result<T, ClusterError>,
}

/// Runs `work` for every item (named by its cluster), at most `concurrency` at a time, in order.
/// A task that panics is that cluster's failure (`ClusterError::Crashed`), not the fleet's.
pub(super) async fn for_each<I, T, F, Fut>(
    items: Vec<(String, I)>,
    concurrency: usize,
    work: F,
) -> Vec<Outcome<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, ClusterError>> + Send + 'static,
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
        let result = task.await.unwrap_or_else(|e| {
            Err(ClusterError::Crashed {
                cluster: cluster.clone(),
                source: e,
            })
        });
        out.push(Outcome { cluster, result });
    }
    out
}

pub(super) fn named(bundles: Vec<Bundle>) -> Vec<(String, Bundle)> {
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
        async move { remove_cluster(&mgmt, &name, &opts).await }
    })
    .await
}

/// Applies every bundle, at most `concurrency` clusters at a time.
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
            apply_cluster(&mgmt, &bundle, &opts).await
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_cluster_fails_alone() {
        let items = vec![
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3),
        ];
        let outcomes = for_each(items, 2, |n: i32| async move {
            if n == 2 {
                panic!("boom");
            }
            Ok(n * 10)
        })
        .await;
        let results: Vec<(String, Result<i32, String>)> = outcomes
            .into_iter()
            .map(|o| (o.cluster, o.result.map_err(|e| e.to_string())))
            .collect();
        assert_eq!(results[0], ("a".to_string(), Ok(10)));
        assert_eq!(results[2], ("c".to_string(), Ok(30)));
        let failed = results[1].1.as_ref().unwrap_err();
        assert!(failed.contains("cluster b"), "{failed}");
    }
}
