//! Observing and applying one stage of a bundle against one cluster: dry-run every object, plan,
//! write only what drifted (CRDs and Namespaces first, waited for), prune, record the inventory.

use std::time::Duration;

use serde_json::Value;

use super::api::{ApiError, ClusterApi};
use super::groups::Group;
use super::inventory::{self, Entry};
use super::wait::{WaitError, wait_healthy};
use crate::diff::key::ObjectKey;
use crate::diff::plan::{Action, ObjectChange, Observed, plan_stage};
use crate::kube_client::KubeError;
use crate::model::types::StageName;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{stage} stage")]
    Api {
        stage: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("{stage} stage")]
    Wait {
        stage: &'static str,
        #[source]
        source: WaitError,
    },
}

/// What the server says about each desired object. A dry-run that cannot run because what it
/// needs does not exist yet (its namespace, its CRD) stands in as "create as rendered".
pub async fn observe(api: &impl ClusterApi, objects: &[Value]) -> Result<Vec<Observed>, ApiError> {
    observe_with(api, objects, |_| false).await
}

/// [`observe`], except that objects for which `create_only` holds are only read: applying
/// leaves one that exists as it is, so its live object stands in for the dry-run (it plans as
/// unchanged) and the dry-run, the costliest request, is spared. The others are read and
/// dry-run at once, one object after another.
pub async fn observe_with(
    api: &impl ClusterApi,
    objects: &[Value],
    create_only: impl Fn(&Value) -> bool,
) -> Result<Vec<Observed>, ApiError> {
    let mut observed = Vec::with_capacity(objects.len());
    for obj in objects {
        let (live, dry_run) = if create_only(obj) {
            match api.get(obj).await {
                Ok(Some(live)) => (Ok(Some(live.clone())), Ok(live)),
                live => (live, api.dry_run(obj).await),
            }
        } else {
            tokio::join!(api.get(obj), api.dry_run(obj))
        };
        let live = match live {
            Ok(live) => live,
            Err(e) if not_there_yet(&e) => None,
            Err(e) => return Err(e),
        };
        let dry_run = match dry_run {
            Ok(v) => Some(v),
            Err(e) if live.is_none() && not_there_yet(&e) => None,
            Err(e) => return Err(e),
        };
        observed.push(Observed {
            desired: obj.clone(),
            dry_run,
            live,
        });
    }
    Ok(observed)
}

/// A refusal because a namespace or a kind does not exist yet.
fn not_there_yet(e: &ApiError) -> bool {
    matches!(e, ApiError::Kube(KubeError::UnknownKind { .. })) || e.is_not_found()
}

/// Plans one stage against the cluster (no writes). Objects in `create_only` that exist are
/// unchanged whatever their content (another stage owns them), and are not dry-run.
pub async fn plan(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
    objects: &[Value],
    create_only: &[ObjectKey],
    prune: bool,
) -> Result<Vec<ObjectChange>, ApiError> {
    let observed = observe_with(api, objects, |o| create_only.contains(&ObjectKey::of(o))).await?;
    let recorded = inventory::read(api, cluster, stage).await?;
    let keys: Vec<ObjectKey> = recorded.iter().map(Entry::key).collect();
    Ok(plan_stage(stage, &observed, &keys, prune))
}

/// What applying a stage did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StageReport {
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub orphaned: Vec<String>,
}

/// Options of one stage's apply.
#[derive(Clone, Copy, Debug)]
pub struct StageOptions {
    pub prune: bool,
    pub timeout: Duration,
}

fn first_class(obj: &Value) -> bool {
    matches!(
        obj.get("kind").and_then(Value::as_str),
        Some("CustomResourceDefinition" | "Namespace")
    )
}

/// Applies a stage group by group: in each, CRDs and Namespaces that drifted first (waited
/// until established), then every other drifted object in order, then (when asked) a wait for
/// the whole group's health. Objects that have not drifted are not written. Then prunes and
/// records the inventory.
pub async fn apply_stage(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
    groups: &[Group],
    opts: StageOptions,
) -> Result<StageReport, StageError> {
    let name = stage.as_str();
    let api_err = |source| StageError::Api {
        stage: name,
        source,
    };
    let wait_err = |source| StageError::Wait {
        stage: name,
        source,
    };
    let recorded = inventory::read(api, cluster, stage)
        .await
        .map_err(api_err)?;
    let mut report = StageReport::default();
    for group in groups {
        let (first, rest): (Vec<&Value>, Vec<&Value>) =
            group.objects.iter().partition(|o| first_class(o));
        for part in [first, rest] {
            let part: Vec<Value> = part.into_iter().cloned().collect();
            let observed = observe_with(api, &part, |_| group.create_only)
                .await
                .map_err(api_err)?;
            let changes = plan_stage(stage, &observed, &[], false);
            let mut written = Vec::new();
            for (obj, change) in part.iter().zip(&changes) {
                let exists = change.action != Action::Create;
                if change.action == Action::Unchanged || (group.create_only && exists) {
                    report.unchanged += 1;
                    continue;
                }
                api.apply(obj).await.map_err(api_err)?;
                report.written += 1;
                written.push(obj.clone());
            }
            let established: Vec<Value> = written.into_iter().filter(first_class).collect();
            wait_healthy(api, &established, opts.timeout)
                .await
                .map_err(wait_err)?;
        }
        if group.wait {
            wait_healthy(api, &group.objects, opts.timeout)
                .await
                .map_err(wait_err)?;
        }
    }
    let objects: Vec<&Value> = groups.iter().flat_map(|g| &g.objects).collect();
    let desired: Vec<Entry> = objects.iter().map(|o| Entry::of(o)).collect();
    let desired_keys: Vec<ObjectKey> = desired.iter().map(Entry::key).collect();
    let mut kept = desired.clone();
    for entry in recorded.iter().filter(|e| !desired_keys.contains(&e.key())) {
        if opts.prune {
            api.delete(&entry.stub()).await.map_err(api_err)?;
            report.deleted += 1;
        } else {
            report.orphaned.push(entry.key().to_string());
            kept.push(entry.clone());
        }
    }
    inventory::write(api, cluster, stage, &recorded, &kept)
        .await
        .map_err(api_err)?;
    Ok(report)
}
