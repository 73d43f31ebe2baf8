//! Comparing the base and head renders of each cluster: object diffs per stage, what they mean
//! for machines, add-on changes by layer, and the warnings a reviewer must not miss.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::markdown::fmt_count;
use super::select::Selection;
use super::{
    ClusterChange, ClusterPreview, FieldChange, LayerChange, MachineImpact, ObjectAction,
    ObjectDiff, Preview, PreviewOptions, Reason, Revision, Summary, Warning, WarningKind,
    stage_objects,
};
use crate::diff::{redact_pair, unified_diff};
use crate::lifecycle::removal::is_protected;
use crate::model::diag::Diagnostic;
use crate::model::types::StageName;
use crate::render::Bundle;
use crate::render::capi::is_hashed_template;
use crate::render::finalize::{HASH_LEN, LAYER_LABEL};
use crate::render::kinds::{ObjectKey, api_group, str_at};

/// Field changes listed per reason at most; the diff below shows the rest.
const MAX_FIELD_CHANGES: usize = 6;
/// Longest value shown in a field change.
const MAX_VALUE_CHARS: usize = 80;

pub(crate) struct Inputs<'a> {
    pub selection: &'a Selection,
    /// Every cluster compared (including those that rendered nowhere), in any order.
    pub compared: Vec<Compared>,
    pub base_errors: Vec<Diagnostic>,
    pub head_diagnostics: Vec<Diagnostic>,
    pub opts: &'a PreviewOptions,
}

/// One cluster's comparison and the warnings it raises.
pub(crate) struct Compared {
    pub name: String,
    pub preview: Option<ClusterPreview>,
    pub warnings: Vec<(WarningKind, String, String)>,
}

/// The clusters defined at head (among those rendered) that rendered on neither side, so
/// that they show as not validating rather than vanish.
pub(crate) fn unrendered<'s>(sel: &'s Selection, seen: &BTreeSet<String>) -> Vec<&'s str> {
    sel.head_names
        .iter()
        .filter(|n| (sel.full || sel.rendered.contains(*n)) && !seen.contains(*n))
        .map(String::as_str)
        .collect()
}

pub(crate) fn assemble(inputs: Inputs<'_>) -> Preview {
    let sel = inputs.selection;
    let mut compared = inputs.compared;
    compared.sort_by(|a, b| a.name.cmp(&b.name));

    let mut clusters = Vec::new();
    let mut grouped: BTreeMap<(WarningKind, String), BTreeSet<String>> = BTreeMap::new();
    for c in compared {
        for (kind, message, cluster) in c.warnings {
            grouped.entry((kind, message)).or_default().insert(cluster);
        }
        clusters.extend(c.preview);
    }

    let mut summary = Summary {
        clusters_base: sel.base_count,
        clusters_head: sel.head_count,
        ..Summary::default()
    };
    for c in &clusters {
        match c.change {
            ClusterChange::Added => summary.clusters_added += 1,
            ClusterChange::Removed => summary.clusters_removed += 1,
            ClusterChange::Changed => summary.clusters_changed += 1,
            ClusterChange::Invalid => summary.clusters_invalid += 1,
        }
        for o in &c.objects {
            match o.action {
                ObjectAction::Create => summary.objects_created += 1,
                ObjectAction::Update | ObjectAction::Replace => summary.objects_changed += 1,
                ObjectAction::Delete => summary.objects_deleted += 1,
            }
        }
    }
    summary.clusters_unchanged = summary.clusters_head.saturating_sub(
        summary.clusters_added + summary.clusters_changed + summary.clusters_invalid,
    );

    let mut warnings = Vec::new();
    let errors: Vec<&Diagnostic> = inputs
        .head_diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    if !errors.is_empty() {
        let clusters: BTreeSet<String> = errors
            .iter()
            .flat_map(|d| d.clusters.iter().cloned())
            .collect();
        warnings.push(Warning {
            kind: WarningKind::Invalid,
            message: format!(
                "the head revision does not validate: {} error{}; cairn would not apply it",
                errors.len(),
                plural(errors.len())
            ),
            clusters: clusters.into_iter().collect(),
        });
    }
    warnings.extend(
        grouped
            .into_iter()
            .map(|((kind, message), clusters)| Warning {
                kind,
                message,
                clusters: clusters.into_iter().collect(),
            }),
    );
    let touched = summary.clusters_changed + summary.clusters_removed;
    let fleet = summary.clusters_base;
    let share = inputs.opts.max_share_percent;
    if touched > 1 && fleet > 0 && (touched as f64) * 100.0 > share * fleet as f64 {
        warnings.push(Warning {
            kind: WarningKind::FleetShare,
            message: format!(
                "this change touches {} of the fleet's {} clusters ({}) at once, more than the \
                 {}% limit; consider rolling it out in smaller steps",
                fmt_count(touched),
                fmt_count(fleet),
                percent(touched, fleet),
                trim_float(share)
            ),
            clusters: Vec::new(),
        });
    }
    warnings.sort_by(|a, b| (a.kind, &a.message).cmp(&(b.kind, &b.message)));

    Preview {
        base: Revision {
            rev: "base".into(),
            commit: None,
        },
        head: Revision {
            rev: "head".into(),
            commit: None,
        },
        base_errors: inputs.base_errors,
        head_diagnostics: inputs.head_diagnostics,
        summary,
        warnings,
        clusters,
        live: None,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `n` of `total` as a percentage with one decimal when below 10.
fn percent(n: usize, total: usize) -> String {
    let p = n as f64 * 100.0 / total as f64;
    if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn compare_cluster(
    name: &str,
    base: Option<&Bundle>,
    head: Option<&Bundle>,
    in_base: bool,
    in_head: bool,
) -> Compared {
    let mut warnings = Vec::new();
    let change = match (base, head) {
        (Some(b), Some(h)) if b == h => {
            return Compared {
                name: name.to_string(),
                preview: None,
                warnings,
            };
        }
        (Some(_), Some(_)) => ClusterChange::Changed,
        (None, Some(_)) if in_base => ClusterChange::Changed,
        (None, Some(_)) => ClusterChange::Added,
        (_, None) if in_head => ClusterChange::Invalid,
        (Some(_), None) => ClusterChange::Removed,
        (None, None) => {
            return Compared {
                name: name.to_string(),
                preview: None,
                warnings,
            };
        }
    };
    let protected = base.and_then(|b| capi_cluster(b)).is_some_and(is_protected);
    let mut preview = ClusterPreview {
        name: name.to_string(),
        change,
        pivot_base: base.map(|b| b.pivot),
        pivot_head: head.map(|h| h.pivot),
        protected,
        base_invalid: base.is_none() && head.is_some() && in_base,
        machines: Vec::new(),
        addons: Vec::new(),
        objects: Vec::new(),
    };
    if change == ClusterChange::Invalid {
        // Nothing at head to compare with; the errors say why.
        return Compared {
            name: name.to_string(),
            preview: Some(preview),
            warnings,
        };
    }
    preview.objects = object_diffs(base, head);
    preview.addons = layer_changes(&preview.objects);
    if !preview.base_invalid {
        // With no base render to compare with, "created" would be wrong.
        preview.machines = machine_impact(name, base, head, &mut warnings);
    }
    if change == ClusterChange::Removed && protected {
        warnings.push((
            WarningKind::ProtectedRemoval,
            "removed from the repository, but its Cluster is protected (`cairn.dev/protect: \
             \"true\"`): cairn refuses to delete it, even with `--prune`; remove the annotation \
             in a change of its own first"
                .to_string(),
            name.to_string(),
        ));
    }
    Compared {
        name: name.to_string(),
        preview: Some(preview),
        warnings,
    }
}

fn capi_cluster(bundle: &Bundle) -> Option<&Value> {
    bundle
        .stages
        .iter()
        .flat_map(|s| s.objects.iter())
        .find(|o| {
            kind(o) == "Cluster"
                && api_group(str_at(o, "/apiVersion").unwrap_or("")) == "cluster.x-k8s.io"
        })
}

fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or_default()
}

/// `<stem>-<10 hex>` → `<stem>`.
pub(crate) fn template_stem(name: &str) -> Option<&str> {
    let (stem, hash) = name.rsplit_once('-')?;
    (hash.len() == HASH_LEN && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(stem)
}

/// The key of a hashed template with its name cut to `stem`: what a template and the one that
/// replaces it (same stem, new hash) share.
fn stem_key(key: &ObjectKey, stem: &str) -> ObjectKey {
    ObjectKey {
        name: stem.to_string(),
        ..key.clone()
    }
}

/// The objects that differ, stage by stage: creates, updates and replacements in head order,
/// then deletes in base order.
fn object_diffs(base: Option<&Bundle>, head: Option<&Bundle>) -> Vec<ObjectDiff> {
    let mut out = Vec::new();
    for stage in StageName::ALL {
        let b = base.map(|b| stage_objects(b, stage)).unwrap_or_default();
        let h = head.map(|h| stage_objects(h, stage)).unwrap_or_default();
        let b_index: HashMap<&ObjectKey, &Value> = b.iter().map(|(k, v)| (k, *v)).collect();
        let h_keys: BTreeSet<&ObjectKey> = h.iter().map(|(k, _)| k).collect();
        // Base templates that left, by stem, to pair with the ones that replace them.
        let mut gone_templates: HashMap<ObjectKey, &ObjectKey> = HashMap::new();
        for (k, _) in &b {
            if !h_keys.contains(k)
                && is_hashed_template(&k.kind)
                && let Some(stem) = template_stem(&k.name)
            {
                gone_templates.insert(stem_key(k, stem), k);
            }
        }
        let mut replaced: BTreeSet<&ObjectKey> = BTreeSet::new();
        for (key, new) in &h {
            match b_index.get(key) {
                Some(old) if old == new => {}
                Some(old) => out.push(object_diff(
                    stage,
                    ObjectAction::Update,
                    key,
                    None,
                    Some(old),
                    Some(new),
                )),
                None => {
                    let pair = is_hashed_template(&key.kind)
                        .then(|| template_stem(&key.name))
                        .flatten()
                        .and_then(|stem| gone_templates.remove(&stem_key(key, stem)));
                    match pair {
                        Some(old_key) => {
                            replaced.insert(old_key);
                            out.push(object_diff(
                                stage,
                                ObjectAction::Replace,
                                key,
                                Some(old_key),
                                b_index.get(old_key).copied(),
                                Some(new),
                            ));
                        }
                        None => out.push(object_diff(
                            stage,
                            ObjectAction::Create,
                            key,
                            None,
                            None,
                            Some(new),
                        )),
                    }
                }
            }
        }
        for (key, old) in &b {
            if !h_keys.contains(key) && !replaced.contains(key) {
                out.push(object_diff(
                    stage,
                    ObjectAction::Delete,
                    key,
                    None,
                    Some(old),
                    None,
                ));
            }
        }
    }
    out
}

fn object_diff(
    stage: StageName,
    action: ObjectAction,
    key: &ObjectKey,
    from: Option<&ObjectKey>,
    old: Option<&Value>,
    new: Option<&Value>,
) -> ObjectDiff {
    let layer = new
        .or(old)
        .and_then(|o| crate::render::kinds::label(o, LAYER_LABEL))
        .map(str::to_string);
    ObjectDiff {
        stage,
        key: key.clone(),
        action,
        from: from.map(|k| k.name.clone()),
        layer,
        diff: diff_text(from.unwrap_or(key), key, old, new),
    }
}

/// The unified diff base → head, Secret values redacted, with `base`/`head` headers.
pub(crate) fn diff_text(
    old_key: &ObjectKey,
    new_key: &ObjectKey,
    old: Option<&Value>,
    new: Option<&Value>,
) -> String {
    let (l, d) = redact_pair(old, new);
    let text = unified_diff(new_key, l.as_ref(), d.as_ref());
    relabel(
        &text,
        old.map(|_| old_key),
        new.map(|_| new_key),
        "base",
        "head",
    )
}

/// Replaces the `--- live` / `+++ desired` header of a diff from [`unified_diff`].
pub(crate) fn relabel(
    text: &str,
    old_key: Option<&ObjectKey>,
    new_key: Option<&ObjectKey>,
    old_side: &str,
    new_side: &str,
) -> String {
    let body = text.splitn(3, '\n').nth(2).unwrap_or_default();
    let name = |k: Option<&ObjectKey>| k.map_or("(none)".to_string(), |k| k.to_string());
    format!(
        "--- {old_side} {}\n+++ {new_side} {}\n{body}",
        name(old_key),
        name(new_key)
    )
}

fn layer_changes(objects: &[ObjectDiff]) -> Vec<LayerChange> {
    let mut layers: Vec<LayerChange> = Vec::new();
    for o in objects.iter().filter(|o| o.stage == StageName::Addons) {
        let layer = o.layer.clone().unwrap_or_else(|| "(no layer)".into());
        let entry = match layers.iter().position(|l| l.layer == layer) {
            Some(i) => &mut layers[i],
            None => {
                layers.push(LayerChange {
                    layer,
                    created: Vec::new(),
                    changed: Vec::new(),
                    deleted: Vec::new(),
                });
                layers.last_mut().expect("just pushed")
            }
        };
        let name = o.key.to_string();
        match o.action {
            ObjectAction::Create => entry.created.push(name),
            ObjectAction::Update | ObjectAction::Replace => entry.changed.push(name),
            ObjectAction::Delete => entry.deleted.push(name),
        }
    }
    layers
}

/// The workload stage's copy of an object kind (the full desired CAPI state).
fn workload<'b>(bundle: &'b Bundle, kind_name: &str) -> Vec<&'b Value> {
    bundle
        .stage(StageName::Workload)
        .map(|s| s.objects.iter().filter(|o| kind(o) == kind_name).collect())
        .unwrap_or_default()
}

fn control_plane(bundle: &Bundle) -> Option<&Value> {
    workload(bundle, "KubeadmControlPlane").into_iter().next()
}

fn pools<'b>(cluster: &str, bundle: &'b Bundle) -> BTreeMap<String, &'b Value> {
    workload(bundle, "MachineDeployment")
        .into_iter()
        .map(|md| {
            let pool = str_at(md, "/spec/template/metadata/labels/cairn.dev~1pool")
                .map(str::to_string)
                .or_else(|| {
                    str_at(md, "/metadata/name")
                        .and_then(|n| n.strip_prefix(&format!("{cluster}-")))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| str_at(md, "/metadata/name").unwrap_or("").to_string());
            (pool, md)
        })
        .collect()
}

fn replicas(obj: &Value) -> u64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The object a `{apiGroup, kind, name}` reference at `pointer` names, in the same bundle.
fn referenced<'b>(bundle: &'b Bundle, from: &Value, pointer: &str) -> (String, Option<&'b Value>) {
    let kind_name = str_at(from, &format!("{pointer}/kind")).unwrap_or_default();
    let name = str_at(from, &format!("{pointer}/name")).unwrap_or_default();
    let target = bundle
        .stages
        .iter()
        .rev()
        .flat_map(|s| s.objects.iter())
        .find(|o| kind(o) == kind_name && str_at(o, "/metadata/name") == Some(name));
    (name.to_string(), target)
}

fn machine_impact(
    cluster: &str,
    base: Option<&Bundle>,
    head: Option<&Bundle>,
    warnings: &mut Vec<(WarningKind, String, String)>,
) -> Vec<MachineImpact> {
    let mut out = Vec::new();
    let workers = |b: &Bundle| pools(cluster, b).values().map(|md| replicas(md)).sum();
    if let Some(h) = head
        && let Some(cp) = control_plane(h)
        && replicas(cp).is_multiple_of(2)
        && replicas(cp) > 0
    {
        warnings.push((
            WarningKind::EvenControlPlane,
            format!(
                "{} control-plane machines: an even number adds no etcd fault tolerance over \
                 one fewer; use 1, 3, 5 or 7",
                replicas(cp)
            ),
            cluster.to_string(),
        ));
    }
    match (base, head) {
        (None, Some(h)) => {
            out.push(MachineImpact::ClusterCreated {
                pivot: h.pivot,
                control_plane: control_plane(h).map(replicas).unwrap_or(0),
                workers: workers(h),
                pools: pools(cluster, h).len(),
            });
            return out;
        }
        (Some(b), None) => {
            out.push(MachineImpact::ClusterDeleted {
                pivot: b.pivot,
                protected: capi_cluster(b).is_some_and(is_protected),
                control_plane: control_plane(b).map(replicas).unwrap_or(0),
                workers: workers(b),
            });
            return out;
        }
        (Some(_), Some(_)) => {}
        (None, None) => return out,
    }
    let (b, h) = (base.expect("matched"), head.expect("matched"));
    if b.pivot != h.pivot {
        out.push(MachineImpact::PivotChanged {
            from: b.pivot,
            to: h.pivot,
        });
    }
    let mut versions: BTreeSet<(String, String)> = BTreeSet::new();
    if let (Some(old), Some(new)) = (control_plane(b), control_plane(h)) {
        let mut reasons = Vec::new();
        let (v_old, v_new) = (
            str_at(old, "/spec/version").unwrap_or_default(),
            str_at(new, "/spec/version").unwrap_or_default(),
        );
        if v_old != v_new {
            versions.insert((v_old.to_string(), v_new.to_string()));
            reasons.push(Reason::KubernetesVersion {
                from: v_old.to_string(),
                to: v_new.to_string(),
            });
        }
        let pointer = "/spec/machineTemplate/spec/infrastructureRef";
        if let Some(reason) = template_reason(b, h, old, new, pointer, false) {
            reasons.push(reason);
        }
        let changes = field_changes(
            old.pointer("/spec/kubeadmConfigSpec"),
            new.pointer("/spec/kubeadmConfigSpec"),
        );
        if !changes.is_empty() {
            reasons.push(Reason::KubeadmConfig { changes });
        }
        if !reasons.is_empty() {
            out.push(MachineImpact::ControlPlaneReplaced {
                machines: replicas(old),
                reasons,
            });
        }
        if replicas(old) != replicas(new) {
            out.push(MachineImpact::ControlPlaneScaled {
                from: replicas(old),
                to: replicas(new),
            });
        }
    }
    let (old_pools, new_pools) = (pools(cluster, b), pools(cluster, h));
    for (pool, new) in &new_pools {
        let Some(old) = old_pools.get(pool) else {
            out.push(MachineImpact::PoolAdded {
                pool: pool.clone(),
                replicas: replicas(new),
            });
            continue;
        };
        let mut reasons = Vec::new();
        let (v_old, v_new) = (
            str_at(old, "/spec/template/spec/version").unwrap_or_default(),
            str_at(new, "/spec/template/spec/version").unwrap_or_default(),
        );
        if v_old != v_new {
            versions.insert((v_old.to_string(), v_new.to_string()));
            reasons.push(Reason::KubernetesVersion {
                from: v_old.to_string(),
                to: v_new.to_string(),
            });
        }
        let infra = "/spec/template/spec/infrastructureRef";
        if let Some(reason) = template_reason(b, h, old, new, infra, false) {
            reasons.push(reason);
        }
        let bootstrap = "/spec/template/spec/bootstrap/configRef";
        if let Some(reason) = template_reason(b, h, old, new, bootstrap, true) {
            reasons.push(reason);
        }
        let changes = field_changes(
            old.pointer("/spec/template/spec")
                .map(rollout_fields)
                .as_ref(),
            new.pointer("/spec/template/spec")
                .map(rollout_fields)
                .as_ref(),
        );
        if !changes.is_empty() {
            reasons.push(Reason::MachineSpec { changes });
        }
        if !reasons.is_empty() {
            out.push(MachineImpact::PoolReplaced {
                pool: pool.clone(),
                machines: replicas(old),
                reasons,
            });
        }
        if replicas(old) != replicas(new) {
            out.push(MachineImpact::PoolScaled {
                pool: pool.clone(),
                from: replicas(old),
                to: replicas(new),
            });
        }
    }
    for (pool, old) in &old_pools {
        if !new_pools.contains_key(pool) {
            out.push(MachineImpact::PoolRemoved {
                pool: pool.clone(),
                replicas: replicas(old),
            });
        }
    }
    for (from, to) in versions {
        if let Some((kind, message)) = version_warning(&from, &to) {
            warnings.push((kind, message, cluster.to_string()));
        }
    }
    out
}

/// `spec.template.spec` of a MachineDeployment without what is compared on its own (version,
/// template references) and what CAPI propagates in place without replacing machines.
fn rollout_fields(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        for field in [
            "version",
            "infrastructureRef",
            "bootstrap",
            "deletion",
            "nodeDrainTimeout",
            "nodeVolumeDetachTimeout",
            "nodeDeletionTimeout",
            "minReadySeconds",
            "readinessGates",
        ] {
            map.remove(field);
        }
    }
    spec
}

fn template_reason(
    base: &Bundle,
    head: &Bundle,
    old: &Value,
    new: &Value,
    pointer: &str,
    bootstrap: bool,
) -> Option<Reason> {
    let (from, old_template) = referenced(base, old, pointer);
    let (to, new_template) = referenced(head, new, pointer);
    if from == to {
        return None;
    }
    let spec = "/spec/template/spec";
    let changes = field_changes(
        old_template.and_then(|t| t.pointer(spec)),
        new_template.and_then(|t| t.pointer(spec)),
    );
    Some(if bootstrap {
        Reason::BootstrapTemplate { from, to, changes }
    } else {
        Reason::MachineTemplate { from, to, changes }
    })
}

/// The leaves that differ between two values, as dotted paths, at most [`MAX_FIELD_CHANGES`].
pub(crate) fn field_changes(old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    if out.len() >= MAX_FIELD_CHANGES || old == new {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                walk(&join(k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        _ => out.push(FieldChange {
            field: if path.is_empty() {
                "(whole)".into()
            } else {
                path.to_string()
            },
            from: old.map(short_json),
            to: new.map(short_json),
        }),
    }
}

fn short_json(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// `vMAJOR.MINOR.PATCH` as numbers.
pub(crate) fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.strip_prefix('v')?.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, minor, patch))
}

/// A skipped minor version or a downgrade, which kubeadm (and KubeadmControlPlane) refuse.
pub(crate) fn version_warning(from: &str, to: &str) -> Option<(WarningKind, String)> {
    let (a, b) = (parse_version(from)?, parse_version(to)?);
    if b < a {
        return Some((
            WarningKind::Downgrade,
            format!(
                "Kubernetes {from} → {to} is a downgrade; kubeadm cannot downgrade a cluster, \
                 the rollout will not complete"
            ),
        ));
    }
    let skipped = if b.0 != a.0 { true } else { b.1 > a.1 + 1 };
    skipped.then(|| {
        let missing = if b.0 == a.0 {
            (a.1 + 1..b.1)
                .map(|m| format!("v{}.{m}", a.0))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!("the versions between v{}.{} and v{}.{}", a.0, a.1, b.0, b.1)
        };
        (
            WarningKind::SkippedMinor,
            format!(
                "Kubernetes {from} → {to} skips {missing}; kubeadm upgrades one minor version at \
                 a time, so upgrade through each minor version in turn"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_and_their_warnings() {
        assert_eq!(parse_version("v1.34.2"), Some((1, 34, 2)));
        assert_eq!(parse_version("1.34.2"), None);
        assert_eq!(version_warning("v1.33.6", "v1.34.2"), None);
        assert_eq!(version_warning("v1.34.2", "v1.34.3"), None);
        let (kind, msg) = version_warning("v1.32.4", "v1.34.2").unwrap();
        assert_eq!(kind, WarningKind::SkippedMinor);
        assert!(msg.contains("skips v1.33"), "{msg}");
        let (kind, _) = version_warning("v1.34.2", "v1.33.6").unwrap();
        assert_eq!(kind, WarningKind::Downgrade);
        let (kind, _) = version_warning("v1.34.3", "v1.34.2").unwrap();
        assert_eq!(kind, WarningKind::Downgrade);
    }

    #[test]
    fn template_stems_and_field_changes() {
        assert_eq!(template_stem("c-md-0-0123456789"), Some("c-md-0"));
        assert_eq!(template_stem("c-md-0"), None);
        let a = json!({"numCPUs": 4, "memoryMiB": 8192, "network": {"devices": [{"dhcp4": true}]}});
        let b =
            json!({"numCPUs": 4, "memoryMiB": 16384, "network": {"devices": [{"dhcp4": false}]}});
        let changes = field_changes(Some(&a), Some(&b));
        assert_eq!(
            changes,
            [
                FieldChange {
                    field: "memoryMiB".into(),
                    from: Some("8192".into()),
                    to: Some("16384".into())
                },
                FieldChange {
                    field: "network.devices[0].dhcp4".into(),
                    from: Some("true".into()),
                    to: Some("false".into())
                },
            ]
        );
    }

    #[test]
    fn relabelled_headers() {
        let key = ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: "x".into(),
            name: "y".into(),
        };
        let old = json!({"kind": "ConfigMap", "data": {"k": "1"}});
        let new = json!({"kind": "ConfigMap", "data": {"k": "2"}});
        let text = diff_text(&key, &key, Some(&old), Some(&new));
        assert!(
            text.starts_with("--- base ConfigMap/x/y\n+++ head ConfigMap/x/y\n@@"),
            "{text}"
        );
        let text = diff_text(&key, &key, None, Some(&new));
        assert!(text.starts_with("--- base (none)\n+++ head ConfigMap/x/y\n"));
    }
}
