//! `--live`: the renders of both revisions against what is live, kept apart by cause.
//!
//! The caller fetches, per cluster, the live copy of every object [`LiveRequest`] names and
//! hands them over as plain data ([`LiveState`]); nothing here talks to a cluster. Each object
//! is then classified three ways, base → head → live:
//!
//! | base vs head | live                  | class                 | listed under |
//! |--------------|-----------------------|-----------------------|--------------|
//! | same         | matches               | in sync (counted)     |              |
//! | same         | differs               | `drift`               | drift        |
//! | same         | absent                | `missing`             | drift        |
//! | differ       | matches base          | `change`              | change       |
//! | differ       | matches head          | `already_applied`     | change       |
//! | differ       | matches neither       | `change_over_drift`   | change and drift |
//!
//! "Matches" means every field the render sets has that value live (after dropping what the
//! server owns); fields only the server sets (defaults, status) are not drift. Secret `stringData`
//! counts as the base64 `data` the server stores. Diffs show the live object restricted to the
//! fields the render sets, Secret values redacted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::compare::relabel;
use super::stage_objects;
use crate::diff::redact::is_secret;
use crate::diff::{normalize, redact_pair, unified_diff};
use crate::model::types::StageName;
use crate::render::Bundle;
use crate::render::kinds::ObjectKey;

/// What is live in one cluster (management and workload side together), as fetched.
#[derive(Clone, Debug)]
pub enum LiveCluster {
    /// The live copy of each requested object that exists; absent keys do not exist.
    Objects(HashMap<ObjectKey, Value>),
    /// The cluster could not be read; the text says why (shown as is: no secrets in it).
    Unavailable(String),
}

/// The live state of the fleet, by cluster name. Clusters not in it show as not fetched.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    pub clusters: BTreeMap<String, LiveCluster>,
}

impl LiveState {
    pub fn get(&self, cluster: &str) -> Option<&LiveCluster> {
        self.clusters.get(cluster)
    }
}

/// The objects to fetch for one cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveRequest {
    pub cluster: String,
    /// Whether the cluster pivots at base and at head (where its CAPI objects live), absent
    /// where it does not render.
    pub pivot_base: Option<bool>,
    pub pivot_head: Option<bool>,
    /// Every object of the base and head renders once, with the stage whose copy counts.
    pub objects: Vec<(StageName, ObjectKey)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveClass {
    InSync,
    Drift,
    Missing,
    Change,
    AlreadyApplied,
    ChangeOverDrift,
}

impl LiveClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveClass::InSync => "in_sync",
            LiveClass::Drift => "drift",
            LiveClass::Missing => "missing",
            LiveClass::Change => "change",
            LiveClass::AlreadyApplied => "already_applied",
            LiveClass::ChangeOverDrift => "change_over_drift",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveObject {
    pub stage: StageName,
    #[serde(flatten)]
    pub key: ObjectKey,
    pub class: LiveClass,
    /// What applying head does to the live object (live → head); empty when nothing.
    pub diff: String,
    /// What drifted: base → live, for `drift` and `change_over_drift`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveClusterReport {
    pub cluster: String,
    /// Why the live state is unknown (not fetched, or unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Objects live exactly as both revisions render them.
    pub in_sync: usize,
    /// What this change does: `change`, `already_applied`, `change_over_drift`.
    pub change: Vec<LiveObject>,
    /// Drift that is already there, whatever the change: `drift`, `missing`,
    /// `change_over_drift`.
    pub drift: Vec<LiveObject>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    pub clusters: usize,
    pub clusters_unavailable: usize,
    pub clusters_drifted: usize,
    pub objects_in_sync: usize,
    pub objects_changed_by_this_change: usize,
    pub objects_already_applied: usize,
    pub objects_drifted: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveReport {
    pub summary: LiveSummary,
    /// Clusters with something to say (changes, drift, or no live state), by name.
    pub clusters: Vec<LiveClusterReport>,
}

/// Objects of a bundle, each once: the last stage that renders a key wins.
fn effective(bundle: Option<&Bundle>) -> BTreeMap<ObjectKey, (StageName, &Value)> {
    let mut out = BTreeMap::new();
    if let Some(b) = bundle {
        for stage in StageName::ALL {
            for (key, obj) in stage_objects(b, stage) {
                out.insert(key, (stage, obj));
            }
        }
    }
    out
}

pub(crate) fn request(name: &str, base: Option<&Bundle>, head: Option<&Bundle>) -> LiveRequest {
    let mut objects = effective(base);
    objects.extend(effective(head));
    let mut objects: Vec<(StageName, ObjectKey)> =
        objects.into_iter().map(|(k, (s, _))| (s, k)).collect();
    objects.sort();
    LiveRequest {
        cluster: name.to_string(),
        pivot_base: base.map(|b| b.pivot),
        pivot_head: head.map(|h| h.pivot),
        objects,
    }
}

/// Classifies every object of one cluster; `live` `None` means not fetched.
pub fn compare_cluster(
    name: &str,
    base: Option<&Bundle>,
    head: Option<&Bundle>,
    live: Option<&LiveCluster>,
) -> LiveClusterReport {
    let mut report = LiveClusterReport {
        cluster: name.to_string(),
        unavailable: None,
        in_sync: 0,
        change: Vec::new(),
        drift: Vec::new(),
    };
    let objects = match live {
        None => {
            report.unavailable = Some("not fetched".into());
            return report;
        }
        Some(LiveCluster::Unavailable(why)) => {
            report.unavailable = Some(why.clone());
            return report;
        }
        Some(LiveCluster::Objects(objects)) => objects,
    };
    let (b, h) = (effective(base), effective(head));
    let keys: BTreeSet<&ObjectKey> = b.keys().chain(h.keys()).collect();
    for key in keys {
        let old = b.get(key).map(|(_, o)| *o);
        let new = h.get(key).map(|(_, o)| *o);
        let stage = h.get(key).or_else(|| b.get(key)).map(|(s, _)| *s);
        let stage = stage.expect("the key comes from one of the renders");
        let live = objects.get(key);
        let class = classify(old, new, live);
        if class == LiveClass::InSync {
            report.in_sync += 1;
            continue;
        }
        let diff = match class {
            LiveClass::AlreadyApplied => String::new(),
            _ => live_diff(key, live, new, "head"),
        };
        let drift = matches!(class, LiveClass::Drift | LiveClass::ChangeOverDrift)
            .then(|| base_to_live(key, old, live));
        let object = LiveObject {
            stage,
            key: key.clone(),
            class,
            diff,
            drift,
        };
        match class {
            LiveClass::Drift | LiveClass::Missing => report.drift.push(object),
            LiveClass::ChangeOverDrift => {
                report.drift.push(object.clone());
                report.change.push(object);
            }
            _ => report.change.push(object),
        }
    }
    report
}

/// The three-way classification of one object (see the module documentation).
pub fn classify(base: Option<&Value>, head: Option<&Value>, live: Option<&Value>) -> LiveClass {
    let same_render = base == head;
    let at = |desired: Option<&Value>| match (desired, live) {
        (None, None) => true,
        (Some(d), Some(l)) => matches(d, l),
        _ => false,
    };
    if same_render {
        return match (head, live) {
            (Some(_), None) => LiveClass::Missing,
            _ if at(head) => LiveClass::InSync,
            _ => LiveClass::Drift,
        };
    }
    if at(head) {
        LiveClass::AlreadyApplied
    } else if at(base) {
        LiveClass::Change
    } else {
        LiveClass::ChangeOverDrift
    }
}

/// Whether every field `desired` sets has that value in `live` (server fields dropped first).
pub fn matches(desired: &Value, live: &Value) -> bool {
    subset(&comparable(desired), &normalize(live))
}

fn subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| {
            l.get(k).is_some_and(|lv| subset(v, lv)) || (v.is_null() && !l.contains_key(k))
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// A desired object as the server would store it: Secret `stringData` folded into `data`.
fn comparable(desired: &Value) -> Value {
    let mut out = desired.clone();
    if !is_secret(desired) {
        return out;
    }
    if let Some(map) = out.as_object_mut()
        && let Some(Value::Object(string_data)) = map.remove("stringData")
    {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let bytes = match &v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                };
                data.insert(k, Value::String(STANDARD.encode(bytes)));
            }
        }
    }
    out
}

/// `live` restricted to the fields `desired` sets, so that diffs show only what cairn manages.
fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.keys()
                .filter_map(|k| l.get(k).map(|lv| (k.clone(), project(lv, &d[k]))))
                .collect(),
        ),
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            Value::Array(l.iter().zip(d).map(|(lv, dv)| project(lv, dv)).collect())
        }
        (l, _) => l.clone(),
    }
}

/// live → `desired` (restricted to what the render sets), redacted, headed `live`/`side`.
fn live_diff(key: &ObjectKey, live: Option<&Value>, desired: Option<&Value>, side: &str) -> String {
    let desired = desired.map(comparable);
    let live = live.map(|l| match &desired {
        Some(d) => project(&normalize(l), d),
        None => normalize(l),
    });
    let (l, d) = redact_pair(live.as_ref(), desired.as_ref());
    let text = unified_diff(key, l.as_ref(), d.as_ref());
    if text.is_empty() {
        return text;
    }
    relabel(
        &text,
        live.as_ref().map(|_| key),
        desired.as_ref().map(|_| key),
        "live",
        side,
    )
}

/// base → live: what drifted from the base render.
fn base_to_live(key: &ObjectKey, base: Option<&Value>, live: Option<&Value>) -> String {
    let base = base.map(comparable);
    let live = live.map(|l| match &base {
        Some(b) => project(&normalize(l), b),
        None => normalize(l),
    });
    let (b, l) = redact_pair(base.as_ref(), live.as_ref());
    let text = unified_diff(key, b.as_ref(), l.as_ref());
    if text.is_empty() {
        return text;
    }
    relabel(
        &text,
        base.as_ref().map(|_| key),
        live.as_ref().map(|_| key),
        "base",
        "live",
    )
}

pub(crate) fn report(clusters: Vec<LiveClusterReport>) -> LiveReport {
    let mut summary = LiveSummary {
        clusters: clusters.len(),
        ..LiveSummary::default()
    };
    let mut kept = Vec::new();
    for c in clusters {
        summary.objects_in_sync += c.in_sync;
        if c.unavailable.is_some() {
            summary.clusters_unavailable += 1;
        }
        if !c.drift.is_empty() {
            summary.clusters_drifted += 1;
        }
        summary.objects_drifted += c.drift.len();
        for o in &c.change {
            match o.class {
                LiveClass::AlreadyApplied => summary.objects_already_applied += 1,
                _ => summary.objects_changed_by_this_change += 1,
            }
        }
        if c.unavailable.is_some() || !c.change.is_empty() || !c.drift.is_empty() {
            kept.push(c);
        }
    }
    LiveReport {
        summary,
        clusters: kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Stage;
    use serde_json::json;

    fn cm(name: &str, v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "apps", "labels": {"cairn.dev/cluster": "c"}},
               "data": {"k": v}})
    }

    /// As the server returns it: its own metadata, defaults and status.
    fn served(obj: &Value) -> Value {
        let mut o = obj.clone();
        o["metadata"]["uid"] = json!("u-1");
        o["metadata"]["resourceVersion"] = json!("9");
        o["metadata"]["managedFields"] = json!([{"manager": "cairn"}]);
        o["metadata"]["labels"]["added-by-someone"] = json!("x");
        o["immutable"] = json!(false);
        o["status"] = json!({"x": 1});
        o
    }

    #[test]
    fn three_way_classes() {
        let (a, b, x) = (cm("m", "1"), cm("m", "2"), cm("m", "edited"));
        let c = classify;
        // The change does not touch the object.
        assert_eq!(c(Some(&a), Some(&a), Some(&served(&a))), LiveClass::InSync);
        assert_eq!(c(Some(&a), Some(&a), Some(&served(&x))), LiveClass::Drift);
        assert_eq!(c(Some(&a), Some(&a), None), LiveClass::Missing);
        // It does.
        assert_eq!(c(Some(&a), Some(&b), Some(&served(&a))), LiveClass::Change);
        assert_eq!(
            c(Some(&a), Some(&b), Some(&served(&b))),
            LiveClass::AlreadyApplied
        );
        assert_eq!(
            c(Some(&a), Some(&b), Some(&served(&x))),
            LiveClass::ChangeOverDrift
        );
        assert_eq!(c(Some(&a), Some(&b), None), LiveClass::ChangeOverDrift);
        // Creates and deletes.
        assert_eq!(c(None, Some(&b), None), LiveClass::Change);
        assert_eq!(
            c(None, Some(&b), Some(&served(&b))),
            LiveClass::AlreadyApplied
        );
        assert_eq!(
            c(None, Some(&b), Some(&served(&x))),
            LiveClass::ChangeOverDrift
        );
        assert_eq!(c(Some(&a), None, Some(&served(&a))), LiveClass::Change);
        assert_eq!(c(Some(&a), None, None), LiveClass::AlreadyApplied);
        assert_eq!(
            c(Some(&a), None, Some(&served(&x))),
            LiveClass::ChangeOverDrift
        );
    }

    #[test]
    fn secret_string_data_matches_its_base64_and_never_prints() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "s", "namespace": "apps"},
                             "stringData": {"token": "CANARY-live-1"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "s", "namespace": "apps", "uid": "u"},
                          "type": "Opaque",
                          "data": {"token": STANDARD.encode("CANARY-live-1")}});
        assert!(matches(&desired, &live));
        let drifted = json!({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "s", "namespace": "apps"},
                             "data": {"token": STANDARD.encode("CANARY-live-2")}});
        assert!(!matches(&desired, &drifted));
        let key = ObjectKey::of(&desired);
        let text = live_diff(&key, Some(&drifted), Some(&desired), "head")
            + &base_to_live(&key, Some(&desired), Some(&drifted));
        assert!(text.contains("<redacted: changed>"), "{text}");
        for leak in [
            "CANARY",
            &STANDARD.encode("CANARY-live-1"),
            &STANDARD.encode("CANARY-live-2"),
        ] {
            assert!(!text.contains(leak), "{text}");
        }
    }

    fn bundle(objects: Vec<Value>) -> Bundle {
        Bundle {
            cluster: "c".into(),
            pivot: false,
            stages: vec![Stage {
                name: StageName::Addons,
                objects,
            }],
        }
    }

    #[test]
    fn change_and_drift_are_kept_apart() {
        let base = bundle(vec![
            cm("same", "1"),
            cm("changed", "1"),
            cm("drifted", "1"),
        ]);
        let head = bundle(vec![
            cm("same", "1"),
            cm("changed", "2"),
            cm("drifted", "1"),
            cm("new", "1"),
        ]);
        let mut live = HashMap::new();
        live.insert(ObjectKey::of(&cm("same", "1")), served(&cm("same", "1")));
        live.insert(
            ObjectKey::of(&cm("changed", "1")),
            served(&cm("changed", "1")),
        );
        live.insert(
            ObjectKey::of(&cm("drifted", "1")),
            served(&cm("drifted", "by hand")),
        );
        let report = compare_cluster(
            "c",
            Some(&base),
            Some(&head),
            Some(&LiveCluster::Objects(live)),
        );
        assert_eq!(report.in_sync, 1);
        let names = |v: &[LiveObject]| -> Vec<(String, LiveClass)> {
            v.iter().map(|o| (o.key.name.clone(), o.class)).collect()
        };
        assert_eq!(
            names(&report.change),
            [
                ("changed".into(), LiveClass::Change),
                ("new".into(), LiveClass::Change)
            ]
        );
        assert_eq!(names(&report.drift), [("drifted".into(), LiveClass::Drift)]);
        let drift = &report.drift[0];
        assert!(
            drift.diff.contains("-  k: by hand\n+  k: '1'"),
            "{}",
            drift.diff
        );
        assert!(
            drift
                .diff
                .starts_with("--- live ConfigMap/apps/drifted\n+++ head"),
            "{}",
            drift.diff
        );
        // Server-owned fields and extra labels are not shown.
        assert!(!drift.diff.contains("uid") && !drift.diff.contains("added-by-someone"));
        assert!(drift.drift.as_ref().unwrap().contains("+  k: by hand"));

        let summary = report_for(vec![report.clone()]).summary;
        assert_eq!(summary.objects_in_sync, 1);
        assert_eq!(summary.objects_changed_by_this_change, 2);
        assert_eq!(summary.objects_drifted, 1);
        assert_eq!(summary.clusters_drifted, 1);

        let missing = compare_cluster("c", Some(&base), Some(&head), None);
        assert_eq!(missing.unavailable.as_deref(), Some("not fetched"));
    }

    fn report_for(c: Vec<LiveClusterReport>) -> LiveReport {
        report(c)
    }

    #[test]
    fn requests_name_each_object_once_at_its_last_stage() {
        let kcp = |replicas| {
            json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "KubeadmControlPlane", "metadata": {"name": "c-control-plane", "namespace": "c"},
            "spec": {"replicas": replicas}})
        };
        let b = Bundle {
            cluster: "c".into(),
            pivot: true,
            stages: vec![
                Stage {
                    name: StageName::Bootstrap,
                    objects: vec![kcp(1)],
                },
                Stage {
                    name: StageName::Workload,
                    objects: vec![kcp(3)],
                },
            ],
        };
        let req = request("c", None, Some(&b));
        assert_eq!(req.objects.len(), 1);
        assert_eq!(req.objects[0].0, StageName::Workload);
        assert_eq!(req.pivot_head, Some(true));
    }
}
