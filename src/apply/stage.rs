//! Observing and applying one stage of a bundle against one cluster: dry-run every object, plan,
//! write only what drifted (CRDs and Namespaces first, waited for), prune, record the inventory.
//! What applying did is reported as the [`ObjectChange`]s of `diff::plan`, the record `cairn
//! diff` makes of what applying would do (as Flux's ssa `ChangeSet` serves both).

use std::time::Duration;

use serde_json::Value;

use super::api::{ApiError, ClusterApi};
use super::groups::Group;
use super::inventory::{self, Entry};
use super::wait::{WaitError, wait_healthy};
use crate::diff::plan::{Action, ObjectChange, Observed, Summary, plan_stage};
use crate::kube_client::KubeError;
use crate::model::types::StageName;
use crate::render::kinds::ObjectKey;

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

fn api_error(stage: StageName) -> impl Fn(ApiError) -> StageError + Copy {
    move |source| StageError::Api {
        stage: stage.as_str(),
        source,
    }
}

fn wait_error(stage: StageName) -> impl Fn(WaitError) -> StageError + Copy {
    move |source| StageError::Wait {
        stage: stage.as_str(),
        source,
    }
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

/// What applying a stage did: one [`ObjectChange`] per object, in the order it was done. First
/// every desired object, created, updated or left unchanged (a create-only object that exists is
/// unchanged whatever it holds), then those that left the stage: deleted with `prune`, orphaned
/// (kept) without. The changes carry no text diff. Every count is read off `changes`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StageReport {
    pub changes: Vec<ObjectChange>,
    /// The orphans of `changes`, as `Kind/namespace/name`, in order: what the CLI lists as
    /// kept. Derived from `changes` by [`StageReport::new`], not counted on its own.
    #[serde(skip)]
    pub orphaned: Vec<String>,
}

impl StageReport {
    pub fn new(changes: Vec<ObjectChange>) -> StageReport {
        let orphaned = changes
            .iter()
            .filter(|c| c.action == Action::Orphan)
            .map(|c| c.key.to_string())
            .collect();
        StageReport { changes, orphaned }
    }

    /// How many objects applying did each thing to.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.changes)
    }

    /// Objects written: created or updated.
    pub fn written(&self) -> usize {
        let s = self.summary();
        s.create + s.update
    }

    /// Desired objects left as they were.
    pub fn unchanged(&self) -> usize {
        self.summary().unchanged
    }

    /// Objects pruned.
    pub fn deleted(&self) -> usize {
        self.summary().delete
    }

    /// Whether applying wrote to the server: created, updated or deleted anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action.writes())
    }
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

/// Applies one group (as the identity `api` has): CRDs and Namespaces that drifted first,
/// waited until established, then the rest, then the group's health when it waits.
async fn apply_group(
    api: &impl ClusterApi,
    stage: StageName,
    group: &Group,
    opts: StageOptions,
    changes: &mut Vec<ObjectChange>,
) -> Result<(), StageError> {
    let (api_err, wait_err) = (api_error(stage), wait_error(stage));
    let (first, rest): (Vec<&Value>, Vec<&Value>) =
        group.objects.iter().partition(|o| first_class(o));
    for part in [first, rest] {
        let part: Vec<Value> = part.into_iter().cloned().collect();
        let observed = observe_with(api, &part, |_| group.create_only)
            .await
            .map_err(api_err)?;
        let planned = plan_stage(stage, &observed, &[], false);
        let mut written = Vec::new();
        for (obj, mut change) in part.iter().zip(planned) {
            // The report says what was done; the text of a change is `cairn diff`'s.
            change.diff = None;
            if group.create_only && change.action != Action::Create {
                change.action = Action::Unchanged;
            }
            if change.action != Action::Unchanged {
                api.apply(obj).await.map_err(api_err)?;
                written.push(obj.clone());
            }
            changes.push(change);
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
    Ok(())
}

/// Deletes a recorded object as whom it was applied: a tenant's layer deletes only what its
/// account may.
async fn delete_as_applied(api: &impl ClusterApi, entry: &Entry) -> Result<bool, ApiError> {
    match &entry.impersonate {
        None => api.delete(&entry.stub()).await,
        Some(user) => api.impersonating(user)?.delete(&entry.stub()).await,
    }
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
    apply_recorded(api, cluster, stage, groups, opts, true).await
}

/// Applies some groups of a stage ahead of the rest (the bootstrap layers of the add-ons):
/// as [`apply_stage`], except that the inventory only gains what was applied, and nothing
/// else of the stage is reported, kept or pruned; the whole stage's apply does that later.
pub async fn apply_part(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
    groups: &[Group],
    opts: StageOptions,
) -> Result<StageReport, StageError> {
    apply_recorded(api, cluster, stage, groups, opts, false).await
}

/// The groups applied, then the inventory: for the `whole` stage, what it no longer renders is
/// pruned or kept (and reported); for a part, it is left as recorded.
async fn apply_recorded(
    api: &impl ClusterApi,
    cluster: &str,
    stage: StageName,
    groups: &[Group],
    opts: StageOptions,
    whole: bool,
) -> Result<StageReport, StageError> {
    let api_err = api_error(stage);
    let recorded = inventory::read(api, cluster, stage)
        .await
        .map_err(api_err)?;
    let mut changes = apply_groups(api, stage, groups, opts).await?;
    let desired = desired_entries(groups);
    let desired_keys: Vec<ObjectKey> = desired.iter().map(Entry::key).collect();
    let mut kept = desired;
    for entry in recorded.iter().filter(|e| !desired_keys.contains(&e.key())) {
        if !whole {
            kept.push(entry.clone());
            continue;
        }
        let action = if opts.prune {
            delete_as_applied(api, entry).await.map_err(api_err)?;
            Action::Delete
        } else {
            kept.push(entry.clone());
            Action::Orphan
        };
        changes.push(ObjectChange {
            key: entry.key(),
            stage,
            action,
            diff: None,
        });
    }
    inventory::write(api, cluster, stage, &recorded, &kept)
        .await
        .map_err(api_err)?;
    Ok(StageReport::new(changes))
}

/// Every group, in order, each as its impersonated user when it names one.
async fn apply_groups(
    api: &impl ClusterApi,
    stage: StageName,
    groups: &[Group],
    opts: StageOptions,
) -> Result<Vec<ObjectChange>, StageError> {
    let mut changes = Vec::new();
    for group in groups {
        match &group.impersonate {
            None => apply_group(api, stage, group, opts, &mut changes).await?,
            Some(user) => {
                let acting = api.impersonating(user).map_err(api_error(stage))?;
                apply_group(&acting, stage, group, opts, &mut changes).await?;
            }
        }
    }
    Ok(changes)
}

fn desired_entries(groups: &[Group]) -> Vec<Entry> {
    groups
        .iter()
        .flat_map(|g| &g.objects)
        .map(Entry::of)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apply::memory::MemoryApi;

    fn cm(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
    }

    fn group(objects: Vec<Value>, create_only: bool) -> Group {
        Group {
            objects,
            wait: false,
            create_only,
            impersonate: None,
        }
    }

    fn opts(prune: bool) -> StageOptions {
        StageOptions {
            prune,
            timeout: Duration::from_secs(5),
        }
    }

    async fn live(api: &MemoryApi, name: &str) -> Option<Value> {
        api.get(&cm(name, "")).await.unwrap()
    }

    fn listed(report: &StageReport) -> Vec<(Action, String)> {
        report
            .changes
            .iter()
            .map(|c| (c.action, c.key.to_string()))
            .collect()
    }

    /// Every count is the number of changes with that action.
    fn assert_counts_from_changes(report: &StageReport) {
        let count = |actions: &[Action]| {
            report
                .changes
                .iter()
                .filter(|c| actions.contains(&c.action))
                .count()
        };
        assert_eq!(report.written(), count(&[Action::Create, Action::Update]));
        assert_eq!(report.unchanged(), count(&[Action::Unchanged]));
        assert_eq!(report.deleted(), count(&[Action::Delete]));
        assert_eq!(report.orphaned.len(), count(&[Action::Orphan]));
        assert_eq!(report.summary(), Summary::of(&report.changes));
        assert_eq!(
            report.has_changes(),
            report.written() + report.deleted() > 0
        );
    }

    #[test]
    fn counts_are_read_off_the_changes() {
        let change = |name: &str, action| ObjectChange {
            key: ObjectKey::of(&cm(name, "")),
            stage: StageName::Addons,
            action,
            diff: None,
        };
        let report = StageReport::new(vec![
            change("a", Action::Create),
            change("b", Action::Update),
            change("c", Action::Unchanged),
            change("d", Action::Delete),
            change("e", Action::Orphan),
            change("f", Action::Orphan),
        ]);
        assert_counts_from_changes(&report);
        assert_eq!(
            (report.written(), report.unchanged(), report.deleted()),
            (2, 1, 1)
        );
        assert_eq!(
            report.orphaned,
            ["ConfigMap/default/e", "ConfigMap/default/f"]
        );
        let idle = StageReport::new(vec![
            change("c", Action::Unchanged),
            change("e", Action::Orphan),
        ]);
        assert!(
            !idle.has_changes(),
            "unchanged objects and orphans write nothing"
        );
    }

    #[tokio::test]
    async fn apply_stage_reports_each_change_it_carried_out() {
        let api = MemoryApi::new();
        let stage = StageName::Addons;
        let apply = |groups: Vec<Group>, prune| {
            let api = &api;
            async move {
                apply_stage(api, "c", stage, &groups, opts(prune))
                    .await
                    .unwrap()
            }
        };

        let first = apply(vec![group(vec![cm("a", "1"), cm("b", "1")], false)], false).await;
        assert_eq!(
            listed(&first),
            [
                (Action::Create, "ConfigMap/default/a".to_string()),
                (Action::Create, "ConfigMap/default/b".to_string()),
            ]
        );
        assert!(
            first
                .changes
                .iter()
                .all(|c| c.stage == stage && c.diff.is_none())
        );
        assert_counts_from_changes(&first);

        // `b` changes, `a` leaves the repository (kept without prune), and `held` exists with
        // content of its own: create-only, it stays as it is.
        api.seed(&cm("held", "theirs"));
        let before = api.revision();
        let second = apply(
            vec![
                group(vec![cm("b", "2")], false),
                group(vec![cm("held", "ours")], true),
            ],
            false,
        )
        .await;
        assert_eq!(
            listed(&second),
            [
                (Action::Update, "ConfigMap/default/b".to_string()),
                (Action::Unchanged, "ConfigMap/default/held".to_string()),
                (Action::Orphan, "ConfigMap/default/a".to_string()),
            ]
        );
        assert_counts_from_changes(&second);
        assert_eq!(second.orphaned, ["ConfigMap/default/a"]);
        assert_eq!(live(&api, "held").await.unwrap()["data"]["k"], "theirs");
        assert_eq!(live(&api, "b").await.unwrap()["data"]["k"], "2");
        assert!(api.revision() > before);

        // With prune, `a` goes.
        let third = apply(
            vec![
                group(vec![cm("b", "2")], false),
                group(vec![cm("held", "ours")], true),
            ],
            true,
        )
        .await;
        assert_eq!(
            listed(&third),
            [
                (Action::Unchanged, "ConfigMap/default/b".to_string()),
                (Action::Unchanged, "ConfigMap/default/held".to_string()),
                (Action::Delete, "ConfigMap/default/a".to_string()),
            ]
        );
        assert_counts_from_changes(&third);
        assert_eq!(third.written(), 0);
        assert!(third.has_changes(), "the prune is a write");
        assert_eq!(live(&api, "a").await, None);

        // Converged: nothing is written, the inventory neither.
        let settled = api.revision();
        let fourth = apply(
            vec![
                group(vec![cm("b", "2")], false),
                group(vec![cm("held", "ours")], true),
            ],
            true,
        )
        .await;
        assert!(!fourth.has_changes(), "{:?}", listed(&fourth));
        assert_eq!(api.revision(), settled);
    }
}
