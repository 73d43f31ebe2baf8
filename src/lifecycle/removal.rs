//! Clusters that left the repository (DESIGN.md §3): with `--prune`, a pivoted one first comes
//! back to the management cluster (reverse pivot), then its Cluster is deleted there, which
//! makes CAPI tear the machines down; then cairn's own leftovers go. A Cluster annotated
//! `cairn.dev/protect: "true"` is never deleted.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::namespace::{created_by_cairn, namespace_ref};
use super::phase::PHASE_ANNOTATION;
use super::pivoted::move_options;
use super::workload::{live_in_workload, reach_workload};
use super::{ApplyOptions, ClusterError, Phase};
use crate::apply::api::{ApiError, ClusterApi, KubeClusterApi};
use crate::apply::inventory;
use crate::model::types::StageName;
use crate::pivot::mover::Mover;
use crate::pivot::steps::Direction;
use crate::render::capi::{CLUSTER_API, cluster_ref, kubeconfig_secret};
use crate::render::finalize::CLUSTER_LABEL;
use crate::render::pivot::AGENT_NAMESPACE;

pub const PROTECT_ANNOTATION: &str = "cairn.dev/protect";

fn api_err(step: &'static str) -> impl FnOnce(ApiError) -> ClusterError {
    move |source| ClusterError::Api { step, source }
}

fn label(obj: &Value) -> Option<String> {
    crate::render::kinds::label(obj, CLUSTER_LABEL).map(str::to_string)
}

pub fn is_protected(cluster: &Value) -> bool {
    crate::render::kinds::annotation(cluster, PROTECT_ANNOTATION) == Some("true")
}

/// The clusters cairn manages that are not in `rendered`: Clusters it labelled in the
/// management cluster, and pivoted ones known by their kept kubeconfig.
pub async fn departed(
    mgmt: &impl ClusterApi,
    rendered: &[String],
) -> Result<Vec<String>, ClusterError> {
    let mut names = BTreeSet::new();
    for cluster in mgmt
        .list(CLUSTER_API, "Cluster", None, Some(CLUSTER_LABEL))
        .await
        .map_err(api_err("list the Clusters"))?
    {
        names.extend(label(&cluster));
    }
    // A management cluster that never pivoted has no cairn-system namespace; listing in a
    // missing namespace is simply empty.
    for secret in mgmt
        .list("v1", "Secret", Some(AGENT_NAMESPACE), Some(CLUSTER_LABEL))
        .await
        .map_err(api_err("list the kept kubeconfigs"))?
    {
        names.extend(label(&secret));
    }
    Ok(names
        .into_iter()
        .filter(|n| !rendered.contains(n))
        .collect())
}

/// How many clusters one prune may delete: a count (`3`) or a share of the managed fleet
/// (`10%`, at least one cluster). A wrong or half-empty `--repo` would otherwise look like
/// every missing cluster left the repository, as Argo CD's `allowEmpty` guard knows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxPrune {
    Count(usize),
    Percent(f64),
}

impl Default for MaxPrune {
    fn default() -> MaxPrune {
        MaxPrune::Percent(10.0)
    }
}

impl std::str::FromStr for MaxPrune {
    type Err = String;

    fn from_str(text: &str) -> Result<MaxPrune, String> {
        let wrong = || format!("`{text}` is not a count like 3 or a share like 10%");
        match text.strip_suffix('%') {
            Some(share) => match share.parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxPrune::Percent(p)),
                _ => Err(wrong()),
            },
            None => text.parse().map(MaxPrune::Count).map_err(|_| wrong()),
        }
    }
}

impl std::fmt::Display for MaxPrune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxPrune::Count(n) => write!(f, "{n}"),
            MaxPrune::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl MaxPrune {
    /// The most clusters a fleet of `fleet` managed clusters may lose at once.
    pub fn allowed(self, fleet: usize) -> usize {
        match self {
            MaxPrune::Count(n) => n,
            MaxPrune::Percent(p) => ((fleet as f64 * p / 100.0).floor() as usize).max(1),
        }
    }
}

/// Why a prune deletes nothing at all.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PruneRefused {
    #[error(
        "refusing to delete {} cluster(s) ({}): the repository renders no cluster at all, \
         which looks like a wrong --repo or --path; nothing was deleted\n  help: if the \
         repository is meant to be empty, pass --max-prune {} to delete them",
        departed.len(), departed.join(", "), departed.len()
    )]
    EmptyRender { departed: Vec<String> },
    #[error(
        "refusing to delete {} of {fleet} clusters at once ({}): --max-prune {max} allows \
         {allowed}; nothing was deleted\n  help: check --repo and --path; if they really left \
         the repository, pass --max-prune {}",
        departed.len(), departed.join(", "), departed.len()
    )]
    TooMany {
        departed: Vec<String>,
        fleet: usize,
        max: MaxPrune,
        allowed: usize,
    },
}

/// Whether `departed` may be deleted when `rendered` clusters are still in the repository.
pub fn check_prune(
    departed: &[String],
    rendered: usize,
    max: MaxPrune,
) -> Result<(), PruneRefused> {
    if departed.is_empty() {
        return Ok(());
    }
    // An empty render deletes only with an explicit count that covers it (Argo CD's allowEmpty).
    let explicit = matches!(max, MaxPrune::Count(n) if departed.len() <= n);
    if rendered == 0 && !explicit {
        return Err(PruneRefused::EmptyRender {
            departed: departed.to_vec(),
        });
    }
    let fleet = rendered + departed.len();
    let allowed = max.allowed(fleet);
    if departed.len() > allowed {
        return Err(PruneRefused::TooMany {
            departed: departed.to_vec(),
            fleet,
            max,
            allowed,
        });
    }
    Ok(())
}

/// Reverse-pivots (when needed) and deletes one cluster that left the repository.
pub async fn remove_cluster(
    mgmt: &KubeClusterApi,
    name: &str,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let stub = cluster_ref(name);
    let in_mgmt = mgmt.get(&stub).await.map_err(api_err("read the Cluster"))?;
    let in_workload = match &in_mgmt {
        Some(_) => None,
        None => live_in_workload(mgmt, name).await?,
    };
    let live = in_mgmt.as_ref().or(in_workload.as_ref().map(|(_, c)| c));
    if live.is_some_and(is_protected) {
        return Err(ClusterError::Protected {
            cluster: name.to_string(),
        });
    }
    let deleting =
        json!({"metadata": {"annotations": {PHASE_ANNOTATION: Phase::Deleting.as_str()}}});
    if let Some((workload, _)) = &in_workload {
        (opts.progress)(
            name,
            "left the repository: moving its CAPI objects back (reverse pivot)",
        );
        workload
            .merge_patch(&stub, &deleting)
            .await
            .map_err(api_err("record phase Deleting"))?;
        reverse(mgmt, workload, name, opts).await?;
    } else if let Some(workload) = reach_workload(mgmt, name).await? {
        // A reverse pivot a killed run left half-done is finished first.
        if workload.get(&stub).await.ok().flatten().is_some() {
            reverse(mgmt, &workload, name, opts).await?;
        }
    }
    if mgmt
        .get(&stub)
        .await
        .map_err(api_err("read the Cluster"))?
        .is_some()
    {
        (opts.progress)(name, "left the repository: deleting the Cluster");
        mgmt.merge_patch(&stub, &deleting)
            .await
            .map_err(api_err("record phase Deleting"))?;
        mgmt.delete(&stub)
            .await
            .map_err(api_err("delete the Cluster"))?;
        wait_gone(mgmt, &stub, opts).await?;
    }
    for stage in [StageName::Bootstrap, StageName::Workload] {
        mgmt.delete(&inventory::inventory_object(name, stage, &[]))
            .await
            .map_err(api_err("delete the inventory"))?;
    }
    mgmt.delete(&kubeconfig_secret(name, AGENT_NAMESPACE))
        .await
        .map_err(api_err("delete the kept kubeconfig"))?;
    let namespace = namespace_ref(name);
    let live = mgmt
        .get(&namespace)
        .await
        .map_err(api_err("read the namespace"))?;
    match live {
        Some(live) if created_by_cairn(&live) => {
            mgmt.delete(&namespace)
                .await
                .map_err(api_err("delete the namespace"))?;
        }
        Some(_) => (opts.progress)(
            name,
            "kept its namespace: it was there before cairn created the cluster",
        ),
        None => {}
    }
    (opts.progress)(name, "deleted");
    Ok(())
}

async fn reverse(
    mgmt: &KubeClusterApi,
    workload: &KubeClusterApi,
    name: &str,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let mover = Mover {
        source: workload,
        target: mgmt,
        direction: Direction::Reverse,
        cluster: name,
        opts: move_options(opts),
    };
    mover.run().await?;
    Ok(())
}

/// Polls until the object is gone.
async fn wait_gone(
    api: &impl ClusterApi,
    obj: &Value,
    opts: &ApplyOptions,
) -> Result<(), ClusterError> {
    let start = std::time::Instant::now();
    while api
        .get(obj)
        .await
        .map_err(api_err("wait for the deletion"))?
        .is_some()
    {
        if start.elapsed() > opts.timeout {
            return Err(ClusterError::Wait {
                step: "waiting for the Cluster to be deleted",
                source: crate::apply::wait::WaitError::Timeout {
                    waited: opts.timeout,
                    unready: vec![format!(
                        "{}: still exists",
                        crate::render::kinds::object_ref(obj)
                    )],
                },
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn the_prune_guard_table() {
        let ten = MaxPrune::Percent(10.0);
        // (departed, still rendered, max, allowed?)
        let table = [
            (0, 0, ten, true),
            (1, 0, ten, false),
            (1, 0, MaxPrune::Count(1), true),
            (2, 0, MaxPrune::Count(1), false),
            (1, 2, ten, true),
            (2, 1, ten, false),
            (5, 45, ten, true),
            (6, 44, ten, false),
            (3, 3, MaxPrune::Count(3), true),
            (4, 3, MaxPrune::Count(3), false),
            (1, 9, MaxPrune::Count(0), false),
        ];
        for (departed, rendered, max, ok) in table {
            let result = check_prune(&names(departed), rendered, max);
            assert_eq!(
                result.is_ok(),
                ok,
                "{departed} of {rendered} with {max}: {result:?}"
            );
        }
        let refused = check_prune(&names(2), 1, ten).unwrap_err().to_string();
        assert!(refused.contains("2 of 3 clusters"), "{refused}");
        assert!(refused.contains("--max-prune 2"), "{refused}");
    }

    #[test]
    fn max_prune_parses_counts_and_shares() {
        assert_eq!("3".parse(), Ok(MaxPrune::Count(3)));
        assert_eq!("25%".parse(), Ok(MaxPrune::Percent(25.0)));
        for wrong in ["", "-1", "x%", "150%", "ten"] {
            assert!(wrong.parse::<MaxPrune>().is_err(), "{wrong}");
        }
    }
}
