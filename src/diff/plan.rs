//! The plan as plain data: per object of a stage, what applying it would do.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use super::normalize::normalize;
use super::redact::redact_pair;
use super::text::unified_diff;
use crate::model::types::StageName;
use crate::render::kinds::{ObjectKey, kind_rank};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not on the server yet.
    Create,
    /// On the server, and the dry-run apply would change it.
    Update,
    /// The dry-run apply changes nothing that is not the server's.
    Unchanged,
    /// Prune: in the inventory, gone from the bundle, and `--prune` given.
    Delete,
    /// Left the repo, kept because `--prune` was not given.
    Orphan,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Update,
        Action::Unchanged,
        Action::Delete,
        Action::Orphan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
            Action::Orphan => "orphan",
        }
    }

    /// Whether applying the plan writes to the server for this object. Orphans are reported but
    /// are not written, so a fleet whose only differences are orphans counts as converged.
    pub fn writes(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Delete)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectChange {
    #[serde(flatten)]
    pub key: ObjectKey,
    pub stage: StageName,
    pub action: Action,
    /// Unified YAML diff, live to desired, Secret values redacted. Present for the creates and
    /// updates of a plan; the changes an apply reports (`apply::stage::StageReport`) carry none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Everything applying one cluster's bundle would do, stage by stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub changes: Vec<ObjectChange>,
}

/// How many objects a plan (or an apply, `apply::stage::StageReport`) does each thing to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub delete: usize,
    pub orphan: usize,
}

impl Summary {
    /// The counts of a list of changes.
    pub fn of(changes: &[ObjectChange]) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
            *summary.slot(change.action) += 1;
        }
        summary
    }

    pub fn count(&self, action: Action) -> usize {
        match action {
            Action::Create => self.create,
            Action::Update => self.update,
            Action::Unchanged => self.unchanged,
            Action::Delete => self.delete,
            Action::Orphan => self.orphan,
        }
    }

    fn slot(&mut self, action: Action) -> &mut usize {
        match action {
            Action::Create => &mut self.create,
            Action::Update => &mut self.update,
            Action::Unchanged => &mut self.unchanged,
            Action::Delete => &mut self.delete,
            Action::Orphan => &mut self.orphan,
        }
    }

    /// The sum of two summaries (fleet totals).
    pub fn plus(mut self, other: Summary) -> Summary {
        for action in Action::ALL {
            *self.slot(action) += other.count(action);
        }
        self
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.changes)
    }

    /// Whether applying the plan would write anything (`cairn diff` exits 1 when so).
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action.writes())
    }
}

/// One desired object of a stage and what the server said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The object as rendered.
    pub desired: Value,
    /// What the server-side dry-run apply (field manager `cairn`) returned; `None` when it could
    /// not run (say, its namespace does not exist yet), in which case `desired` stands in.
    pub dry_run: Option<Value>,
    /// The object as it is on the server, `None` when absent.
    pub live: Option<Value>,
}

/// Plans one stage.
///
/// `observed` is the stage's desired objects in apply order; `inventory` the keys recorded for
/// this cluster and stage by the last apply. An object is unchanged when the normalized dry-run
/// result equals the normalized live object (how Flux's ssa finds drift), created when nothing is
/// live, updated otherwise. Inventory keys no longer desired are deleted with `prune`, orphaned
/// without. Creates, updates and unchanged objects come in apply order, then deletes and orphans
/// in reverse (inventory order reversed, Namespaces and CRDs last).
pub fn plan_stage(
    stage: StageName,
    observed: &[Observed],
    inventory: &[ObjectKey],
    prune: bool,
) -> Vec<ObjectChange> {
    let mut changes = Vec::with_capacity(observed.len());
    let mut desired_keys = HashSet::with_capacity(observed.len());
    for o in observed {
        let key = ObjectKey::of(&o.desired);
        desired_keys.insert(key.clone());
        let target = normalize(o.dry_run.as_ref().unwrap_or(&o.desired));
        let (action, diff) = match o.live.as_ref().map(normalize) {
            None => {
                let (_, desired) = redact_pair(None, Some(&target));
                (Action::Create, unified_diff(&key, None, desired.as_ref()))
            }
            Some(live) if live == target => (Action::Unchanged, String::new()),
            Some(live) => {
                let (live, desired) = redact_pair(Some(&live), Some(&target));
                (
                    Action::Update,
                    unified_diff(&key, live.as_ref(), desired.as_ref()),
                )
            }
        };
        changes.push(ObjectChange {
            key,
            stage,
            action,
            diff: (!diff.is_empty()).then_some(diff),
        });
    }

    let mut seen = HashSet::new();
    let mut gone: Vec<&ObjectKey> = inventory
        .iter()
        .filter(|k| !desired_keys.contains(*k) && seen.insert(*k))
        .collect();
    gone.reverse();
    // Stable: keeps the reversed inventory order within a rank.
    gone.sort_by_key(|k| std::cmp::Reverse(kind_rank(&k.kind)));
    let action = if prune {
        Action::Delete
    } else {
        Action::Orphan
    };
    changes.extend(gone.into_iter().map(|key| ObjectChange {
        key: key.clone(),
        stage,
        action,
        diff: None,
    }));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "apps"}, "data": {"k": value}})
    }

    fn served(obj: &Value) -> Value {
        let mut o = obj.clone();
        o["metadata"]["uid"] = json!("u-1");
        o["metadata"]["resourceVersion"] = json!("7");
        o["metadata"]["managedFields"] = json!([{"manager": "cairn"}]);
        o
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: if kind == "Namespace" { "" } else { "apps" }.into(),
            name: name.into(),
        }
    }

    #[test]
    fn decides_create_update_unchanged_from_dry_run_and_live() {
        let a = cm("a", "1");
        let b = cm("b", "2");
        let c = cm("c", "3");
        let observed = [
            Observed {
                desired: a.clone(),
                dry_run: Some(served(&a)),
                live: None,
            },
            Observed {
                desired: b.clone(),
                dry_run: Some(served(&b)),
                live: Some(served(&cm("b", "old"))),
            },
            Observed {
                desired: c.clone(),
                dry_run: Some(served(&c)),
                live: Some(served(&c)),
            },
        ];
        let changes = plan_stage(StageName::Addons, &observed, &[], false);
        let actions: Vec<Action> = changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Create, Action::Update, Action::Unchanged]);
        let update = changes[1].diff.as_deref().unwrap();
        assert!(update.contains("-  k: old\n+  k: '2'\n"), "{update}");
        assert!(!update.contains("resourceVersion"), "{update}");
        assert!(
            changes[0]
                .diff
                .as_deref()
                .unwrap()
                .contains("+kind: ConfigMap\n")
        );
        assert_eq!(changes[2].diff, None);
        assert!(changes.iter().all(|c| c.stage == StageName::Addons));
    }

    #[test]
    fn compares_the_dry_run_result_not_the_desired_object() {
        // The server defaults a field the repo leaves out: not drift.
        let desired = cm("a", "1");
        let mut defaulted = served(&desired);
        defaulted["immutable"] = json!(false);
        let observed = [Observed {
            desired,
            dry_run: Some(defaulted.clone()),
            live: Some(defaulted),
        }];
        let changes = plan_stage(StageName::Addons, &observed, &[], false);
        assert_eq!(changes[0].action, Action::Unchanged);
    }

    #[test]
    fn without_dry_run_the_desired_object_stands_in() {
        let desired = cm("a", "1");
        let observed = [Observed {
            desired: desired.clone(),
            dry_run: None,
            live: Some(served(&cm("a", "0"))),
        }];
        let changes = plan_stage(StageName::Addons, &observed, &[], false);
        assert_eq!(changes[0].action, Action::Update);
        assert!(changes[0].diff.as_deref().unwrap().contains("+  k: '1'"));
    }

    #[test]
    fn inventory_leftovers_are_deleted_with_prune_in_reverse_order() {
        let keep = cm("keep", "1");
        let observed = [Observed {
            desired: keep.clone(),
            dry_run: Some(served(&keep)),
            live: Some(served(&keep)),
        }];
        let inventory = [
            key("Namespace", "old"),
            key("ConfigMap", "x"),
            key("ConfigMap", "keep"),
            key("ConfigMap", "y"),
            key("ConfigMap", "x"),
        ];
        let pruned = plan_stage(StageName::Addons, &observed, &inventory, true);
        let listed: Vec<(Action, String)> = pruned
            .iter()
            .map(|c| (c.action, c.key.to_string()))
            .collect();
        assert_eq!(
            listed,
            [
                (Action::Unchanged, "ConfigMap/apps/keep".to_string()),
                (Action::Delete, "ConfigMap/apps/y".to_string()),
                (Action::Delete, "ConfigMap/apps/x".to_string()),
                (Action::Delete, "Namespace/old".to_string()),
            ]
        );
        let kept = plan_stage(StageName::Addons, &observed, &inventory, false);
        assert!(
            kept[1..]
                .iter()
                .all(|c| c.action == Action::Orphan && c.diff.is_none())
        );
        assert_eq!(kept.len(), 4);
    }

    #[test]
    fn summary_and_has_changes() {
        let change = |action| ObjectChange {
            key: key("ConfigMap", "a"),
            stage: StageName::Addons,
            action,
            diff: None,
        };
        let mut plan = Plan {
            cluster: "c".into(),
            changes: vec![change(Action::Unchanged), change(Action::Orphan)],
        };
        assert!(
            !plan.has_changes(),
            "orphans and unchanged objects write nothing"
        );
        plan.changes.push(change(Action::Delete));
        plan.changes.push(change(Action::Unchanged));
        assert!(plan.has_changes());
        let s = plan.summary();
        assert_eq!(
            (s.unchanged, s.orphan, s.delete, s.create, s.update),
            (2, 1, 1, 0, 0)
        );
        assert_eq!(s.plus(s).count(Action::Unchanged), 4);
    }
}
