//! The last steps of rendering a cluster: labels, the cluster's patches, and hash names for
//! machine and bootstrap templates (with the references that point at them).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::capi::is_hashed_template;
use super::kinds::{annotation, api_group, object_ref, str_at};
use crate::model::budget::{Budget, Meter, Size, measure};
use crate::model::diag::Diagnostic;
use crate::model::schema::dotted;
use crate::model::types::{ObjectPatch, StageName};
use crate::model::validate::{ResolvedCluster, dns_label, dns_subdomain};

pub const CLUSTER_LABEL: &str = "cairn.dev/cluster";
/// On a cluster's namespace that cairn created (so deleting the cluster may delete it).
pub const CREATED_NAMESPACE_ANNOTATION: &str = "cairn.dev/created-namespace";
pub const STAGE_LABEL: &str = "cairn.dev/stage";
pub const LAYER_LABEL: &str = "cairn.dev/layer";
/// On the objects of a `bootstrap: true` layer: applied once the control plane is initialized,
/// before the nodes are waited Ready.
pub const BOOTSTRAP_LAYER_ANNOTATION: &str = "cairn.dev/bootstrap-layer";
/// Hex digits of the SHA-256 that name a template.
pub const HASH_LEN: usize = 10;

/// Annotation on the objects of a layer with `wait: false`: dependents do not wait for them.
pub const NO_WAIT_ANNOTATION: &str = "cairn.dev/wait";

/// Annotation on the objects of a layer with `serviceAccountName`: `namespace/name` of the
/// ServiceAccount that applies them (see [`impersonated_user`]).
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "cairn.dev/service-account";

/// The namespace and name of the ServiceAccount that applies `obj`, from its
/// [`SERVICE_ACCOUNT_ANNOTATION`].
pub fn service_account(obj: &Value) -> Option<(&str, &str)> {
    annotation(obj, SERVICE_ACCOUNT_ANNOTATION)?.split_once('/')
}

/// The user cairn impersonates for `obj`: `system:serviceaccount:<namespace>:<name>`, as the
/// API server names ServiceAccounts.
pub fn impersonated_user(obj: &Value) -> Option<String> {
    let (namespace, name) = service_account(obj)?;
    Some(format!("system:serviceaccount:{namespace}:{name}"))
}

/// Sets a label, creating `metadata.labels` when needed.
pub fn set_label(obj: &mut Value, key: &str, value: &str) {
    set_metadata_entry(obj, "labels", key, value);
}

/// Sets an annotation, creating `metadata.annotations` when needed.
pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    set_metadata_entry(obj, "annotations", key, value);
}

fn set_metadata_entry(obj: &mut Value, map: &str, key: &str, value: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries = meta.entry(map).or_insert_with(|| Value::Object(Map::new()));
    if !entries.is_object() {
        *entries = Value::Object(Map::new());
    }
    if let Some(entries) = entries.as_object_mut() {
        entries.insert(key.to_string(), Value::String(value.to_string()));
    }
}

pub fn label_stage(objects: &mut [Value], cluster: &str, stage: StageName) {
    for obj in objects {
        set_label(obj, CLUSTER_LABEL, cluster);
        set_label(obj, STAGE_LABEL, stage.as_str());
    }
}

/// Why a patch is refused once it has applied: it went over the cluster's patch budget, or left
/// an object that is not one of the cluster's own (DESIGN.md §1, issue 13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("patch `{patch}`: `{op}` on {object} takes the cluster's patches past their {budget}")]
    OverBudget {
        patch: String,
        op: String,
        object: String,
        budget: Budget,
    },
    #[error("patch `{patch}` turns {object} into {found}; a patch must leave a Kubernetes object")]
    NotAnObject {
        patch: String,
        object: String,
        found: String,
    },
    #[error("patch `{patch}` leaves {object} with {field} {problem}")]
    InvalidField {
        patch: String,
        object: String,
        field: &'static str,
        problem: String,
    },
    #[error(
        "patch `{patch}` turns {object} into a `{kind}` of `{api_version}`; a patch may change an \
         object, not make it another kind of object"
    )]
    KindChanged {
        patch: String,
        object: String,
        kind: String,
        api_version: String,
    },
    #[error(
        "patch `{patch}` moves {object} out of namespace `{cluster}`: the {stage} stage is applied \
         to the management cluster, where each cluster's objects stay in its own namespace"
    )]
    OutsideNamespace {
        patch: String,
        object: String,
        cluster: String,
        stage: &'static str,
    },
    #[error(
        "patch `{patch}` makes {object} a Cluster API object that is not cluster `{cluster}`'s: a \
         cluster's bundle holds only its own, in namespace `{cluster}` and named `{cluster}` or \
         `{cluster}-...`"
    )]
    NotOwnCapiObject {
        patch: String,
        object: String,
        cluster: String,
    },
    #[error("patch `{patch}` makes {object} a second object of that name in the {stage} stage")]
    Duplicate {
        patch: String,
        object: String,
        stage: &'static str,
    },
}

impl PatchError {
    fn help(&self) -> &'static str {
        match self {
            PatchError::OverBudget { .. } => {
                "patches that copy or add large values multiply them; add what is needed once"
            }
            PatchError::NotAnObject { .. } | PatchError::InvalidField { .. } => {
                "a patch on the whole document (path \"\") or on kind, apiVersion or metadata must \
                 leave a valid object; patch the fields below them instead"
            }
            PatchError::KindChanged { .. } => {
                "render the object you want from a profile layer instead of converting another"
            }
            PatchError::OutsideNamespace { .. } | PatchError::NotOwnCapiObject { .. } => {
                "patches may change what a cluster's objects say, not which cluster they belong to"
            }
            PatchError::Duplicate { .. } => "give the object a name no other object has",
        }
    }
}

/// What identifies an object before a patch: how violations are told apart from changes.
struct Identity {
    kind: String,
    group: String,
    namespace: Option<String>,
    name: String,
}

impl Identity {
    fn of(obj: &Value) -> Identity {
        let field = |p: &str| str_at(obj, p).unwrap_or_default().to_string();
        Identity {
            kind: field("/kind"),
            group: api_group(str_at(obj, "/apiVersion").unwrap_or_default()).to_string(),
            namespace: str_at(obj, "/metadata/namespace").map(str::to_string),
            name: field("/metadata/name"),
        }
    }

    /// Identity as duplicates are found: group, kind, namespace, name.
    fn key(&self) -> (&str, &str, &str, &str) {
        (
            &self.group,
            &self.kind,
            self.namespace.as_deref().unwrap_or_default(),
            &self.name,
        )
    }
}

/// Whether `group` is Cluster API's: core, bootstrap, control plane, infrastructure, ...
fn is_capi_group(group: &str) -> bool {
    group == "cluster.x-k8s.io" || group.ends_with(".cluster.x-k8s.io")
}

/// Stages applied to the management cluster (until the pivot moves them).
fn is_management_stage(stage: StageName) -> bool {
    matches!(stage, StageName::Bootstrap | StageName::Workload)
}

/// `Kind`: what Kubernetes accepts as a kind (ASCII letters and digits, a letter first).
fn kind_problem(kind: &str) -> Option<String> {
    let ok = kind.len() <= 63
        && kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind.bytes().all(|b| b.is_ascii_alphanumeric());
    (!ok).then(|| format!("`{kind}`, which is not a kind (letters and digits, a letter first)"))
}

/// `v1` or `group/version`, the group a DNS subdomain and the version a DNS label.
fn api_version_problem(api_version: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let group_ok =
        !api_version.starts_with('/') && (group.is_empty() || dns_subdomain(group, 253).is_ok());
    let ok = group_ok && dns_label(version, 63).is_ok();
    (!ok).then(|| format!("`{api_version}`, which is not an apiVersion (`v1` or `group/version`)"))
}

/// A name Kubernetes accepts: a DNS subdomain for the management side and Cluster API objects
/// (their names become host and label values), else a path segment (what RBAC names such as
/// `system:metrics` need).
fn name_problem(name: &str, strict: bool) -> Option<String> {
    let why = if strict {
        dns_subdomain(name, 253).err()
    } else if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > 253 {
        Some(format!(
            "is {} characters long; the limit is 253",
            name.len()
        ))
    } else if name == "." || name == ".." || name.contains(['/', '%']) {
        Some("is not a valid object name (no `/` or `%`, not `.` or `..`)".to_string())
    } else {
        None
    };
    why.map(|why| format!("`{name}`, which {why}"))
}

/// Checks an object a patch has changed; the violation with the pointer of the field at fault.
fn check_patched(
    cluster: &str,
    stage: StageName,
    before: &Identity,
    after: &Value,
    patch: &str,
    object: &str,
) -> Result<(), (PatchError, &'static str)> {
    let invalid = |field: &'static str, pointer: &'static str, problem: String| {
        let e = PatchError::InvalidField {
            patch: patch.to_string(),
            object: object.to_string(),
            field,
            problem,
        };
        (e, pointer)
    };
    if !after.is_object() {
        let e = PatchError::NotAnObject {
            patch: patch.to_string(),
            object: object.to_string(),
            found: crate::model::schema::describe(after),
        };
        return Err((e, ""));
    }
    let text = |pointer: &str| after.pointer(pointer).map(|v| v.as_str().ok_or(v));
    let not_string = |v: &Value| format!("{}, not a string", crate::model::schema::describe(v));
    let kind = match text("/kind") {
        None => return Err(invalid("kind", "/kind", "missing".into())),
        Some(Err(v)) => return Err(invalid("kind", "/kind", not_string(v))),
        Some(Ok(k)) => k,
    };
    if let Some(problem) = kind_problem(kind) {
        return Err(invalid("kind", "/kind", problem));
    }
    let api_version = match text("/apiVersion") {
        None => return Err(invalid("apiVersion", "/apiVersion", "missing".into())),
        Some(Err(v)) => return Err(invalid("apiVersion", "/apiVersion", not_string(v))),
        Some(Ok(a)) => a,
    };
    if let Some(problem) = api_version_problem(api_version) {
        return Err(invalid("apiVersion", "/apiVersion", problem));
    }
    let group = api_group(api_version);
    if kind != before.kind || group != before.group {
        let e = PatchError::KindChanged {
            patch: patch.to_string(),
            object: object.to_string(),
            kind: kind.to_string(),
            api_version: api_version.to_string(),
        };
        let at = if kind != before.kind {
            "/kind"
        } else {
            "/apiVersion"
        };
        return Err((e, at));
    }
    let capi = is_capi_group(group);
    let management = is_management_stage(stage);
    let name = match text("/metadata/name") {
        None => return Err(invalid("metadata.name", "/metadata/name", "missing".into())),
        Some(Err(v)) => return Err(invalid("metadata.name", "/metadata/name", not_string(v))),
        Some(Ok(n)) => n,
    };
    if let Some(problem) = name_problem(name, capi || management) {
        return Err(invalid("metadata.name", "/metadata/name", problem));
    }
    let namespace = match text("/metadata/namespace") {
        None => None,
        Some(Err(v)) => {
            return Err(invalid(
                "metadata.namespace",
                "/metadata/namespace",
                not_string(v),
            ));
        }
        Some(Ok(ns)) => {
            if let Err(why) = dns_label(ns, 63) {
                let problem = format!("`{ns}`, which {why}");
                return Err(invalid(
                    "metadata.namespace",
                    "/metadata/namespace",
                    problem,
                ));
            }
            Some(ns)
        }
    };
    let moved = namespace != before.namespace.as_deref() || name != before.name;
    if !moved {
        return Ok(());
    }
    if management {
        let own = if kind == "Namespace" {
            name == cluster
        } else {
            namespace == Some(cluster)
        };
        if !own {
            let e = PatchError::OutsideNamespace {
                patch: patch.to_string(),
                object: object.to_string(),
                cluster: cluster.to_string(),
                stage: stage.as_str(),
            };
            let at = if kind == "Namespace" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            return Err((e, at));
        }
    }
    if capi {
        let own_name = name == cluster
            || name
                .strip_prefix(cluster)
                .is_some_and(|rest| rest.starts_with('-'));
        if namespace != Some(cluster) || !own_name {
            let e = PatchError::NotOwnCapiObject {
                patch: patch.to_string(),
                object: object.to_string(),
                cluster: cluster.to_string(),
            };
            let at = if namespace != Some(cluster) {
                "/metadata/namespace"
            } else {
                "/metadata/name"
            };
            return Err((e, at));
        }
    }
    Ok(())
}

/// The last operation of `ops` that wrote `field` (or a document above it): where a violation
/// of that field is reported.
fn op_writing(ops: &[json_patch::PatchOperation], field: &str) -> Option<usize> {
    let covers = |path: &str| {
        path.is_empty()
            || path == field
            || field
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    ops.iter().rposition(|op| {
        use json_patch::PatchOperation as Op;
        match op {
            Op::Test(_) => false,
            Op::Move(m) => covers(m.path.as_str()) || covers(m.from.as_str()),
            Op::Remove(r) => covers(r.path.as_str()),
            other => covers(other.path().as_str()),
        }
    })
}

/// `copy /a to /b`, `add /metadata/labels/x`: an operation as messages name it.
fn describe_op(op: &json_patch::PatchOperation) -> String {
    use json_patch::PatchOperation as Op;
    match op {
        Op::Add(o) => format!("add {}", o.path),
        Op::Remove(o) => format!("remove {}", o.path),
        Op::Replace(o) => format!("replace {}", o.path),
        Op::Move(o) => format!("move {} to {}", o.from, o.path),
        Op::Copy(o) => format!("copy {} to {}", o.from, o.path),
        Op::Test(o) => format!("test {}", o.path),
    }
}

/// Applies the cluster's patches to the objects they target. Every patch must match at least
/// one object; failures name the patch, the operation and the object.
///
/// What patches add is charged to the cluster's [`Meter::patches`] before each operation runs
/// (`add` and `replace` their value, `copy` what it copies), so a doubling `copy` stops at the
/// budget rather than at the memory limit; the first patch over it ends the cluster's patching.
/// Each object a patch changed is then checked again ([`check_patched`]): still a valid object
/// of the same kind, and on the management side, and for Cluster API objects anywhere, still
/// the cluster's own. Objects no patch touched are as cairn rendered them, and add-on documents
/// were checked when parsed, so only the patched ones need it.
pub fn apply_patches(
    rc: &ResolvedCluster,
    stages: &mut [(StageName, Vec<Value>)],
    diags: &mut Vec<Diagnostic>,
) {
    let mut meter = Meter::patches();
    // Objects whose name or namespace a patch changed: (stage, index, patch, operation).
    let mut renamed: Vec<(usize, usize, usize, Option<usize>)> = Vec::new();
    for (i, patch) in rc.cluster().spec.patches.iter().enumerate() {
        let at = format!("/spec/patches/{i}");
        let name = dotted(&at);
        let ops: json_patch::Patch =
            match serde_json::to_value(&patch.patch).and_then(serde_json::from_value) {
                Ok(ops) => ops,
                Err(e) => {
                    diags.push(
                        rc.source
                            .error(&format!("{at}/patch"), format!("invalid JSON patch: {e}")),
                    );
                    continue;
                }
            };
        // What `add` and `replace` bring, measured once for all the objects they apply to.
        let values: Vec<Size> = ops
            .iter()
            .map(|op| match op {
                json_patch::PatchOperation::Add(o) => measure(&o.value, meter.limit()),
                json_patch::PatchOperation::Replace(o) => measure(&o.value, meter.limit()),
                _ => Size::ZERO,
            })
            .collect();
        let op_pointer = |j: Option<usize>| match j {
            Some(j) => format!("{at}/patch/{j}"),
            None => at.clone(),
        };
        let mut matched = 0;
        for (s, (stage, objects)) in stages.iter_mut().enumerate() {
            for (k, obj) in objects.iter_mut().enumerate() {
                if !targets(patch, *stage, obj) {
                    continue;
                }
                matched += 1;
                let mut patched = obj.clone();
                let mut failed = false;
                for (j, op) in ops.iter().enumerate() {
                    let grows = match op {
                        json_patch::PatchOperation::Copy(c) => patched
                            .pointer(c.from.as_str())
                            .map_or(Size::ZERO, |v| measure(v, meter.remaining())),
                        _ => values[j],
                    };
                    if let Err(budget) = meter.charge(grows) {
                        let e = PatchError::OverBudget {
                            patch: name.clone(),
                            op: describe_op(op),
                            object: object_ref(obj),
                            budget,
                        };
                        let help = e.help();
                        diags.push(
                            rc.source
                                .error(&op_pointer(Some(j)), e.to_string())
                                .help(help),
                        );
                        // Every later patch would only add to a spent budget.
                        return;
                    }
                    if let Err(e) = json_patch::patch_unsafe(&mut patched, std::slice::from_ref(op))
                    {
                        let op = patch.patch.get(j);
                        let verb = op
                            .map(|o| format!("{:?}", o.op).to_lowercase())
                            .unwrap_or_default();
                        let path = op.map(|o| o.path.as_str()).unwrap_or_default();
                        diags.push(
                            rc.source
                                .error(
                                    &op_pointer(Some(j)),
                                    format!(
                                        "patch `{name}`: `{verb} {path}` failed on {}: {}",
                                        object_ref(obj),
                                        e.kind
                                    ),
                                )
                                .help(patch_help(&verb)),
                        );
                        failed = true;
                        break;
                    }
                }
                if failed {
                    continue;
                }
                let before = Identity::of(obj);
                let object = object_ref(obj);
                match check_patched(rc.name, *stage, &before, &patched, &name, &object) {
                    Ok(()) => {
                        let after = Identity::of(&patched);
                        if after.key() != before.key() {
                            let field = if after.name != before.name {
                                "/metadata/name"
                            } else {
                                "/metadata/namespace"
                            };
                            renamed.push((s, k, i, op_writing(&ops, field)));
                        }
                        *obj = patched;
                    }
                    Err((e, field)) => {
                        let help = e.help();
                        let pointer = op_pointer(op_writing(&ops, field));
                        diags.push(rc.source.error(&pointer, e.to_string()).help(help));
                    }
                }
            }
        }
        if matched == 0 {
            diags.push(
                rc.source
                    .error(&format!("{at}/target"), format!("patch `{name}` matches no rendered object"))
                    .help("target fields (apiVersion, kind, name, stage) must all match; templates match by `<cluster>-<pool>`"),
            );
        }
    }
    refuse_duplicates(rc, stages, &renamed, diags);
}

/// A renamed object must not take the identity of another object of its stage.
fn refuse_duplicates(
    rc: &ResolvedCluster,
    stages: &[(StageName, Vec<Value>)],
    renamed: &[(usize, usize, usize, Option<usize>)],
    diags: &mut Vec<Diagnostic>,
) {
    for &(s, k, i, j) in renamed {
        let (stage, objects) = &stages[s];
        let me = Identity::of(&objects[k]);
        let clash = objects
            .iter()
            .enumerate()
            .any(|(other, o)| other != k && Identity::of(o).key() == me.key());
        if clash {
            let at = match j {
                Some(j) => format!("/spec/patches/{i}/patch/{j}"),
                None => format!("/spec/patches/{i}"),
            };
            let e = PatchError::Duplicate {
                patch: dotted(&format!("/spec/patches/{i}")),
                object: object_ref(&objects[k]),
                stage: stage.as_str(),
            };
            let help = e.help();
            diags.push(rc.source.error(&at, e.to_string()).help(help));
        }
    }
}

fn patch_help(verb: &str) -> &'static str {
    match verb {
        "add" => {
            "`add` needs the parent of the path to exist; compare the path with `cairn render` output"
        }
        "test" => "the object does not have the value `test` expects",
        _ => "the path must exist in the rendered object; compare it with `cairn render` output",
    }
}

fn targets(patch: &ObjectPatch, stage: StageName, obj: &Value) -> bool {
    let t = &patch.target;
    let field = |p: &str| str_at(obj, p).unwrap_or_default();
    t.stage.is_none_or(|s| s == stage)
        && t.kind.as_deref().is_none_or(|k| k == field("/kind"))
        && t.api_version
            .as_deref()
            .is_none_or(|a| a == field("/apiVersion"))
        && t.name
            .as_deref()
            .is_none_or(|n| n == field("/metadata/name"))
}

/// The first `HASH_LEN` hex digits of the SHA-256 of a value's canonical JSON (keys sorted).
pub fn spec_hash(spec: &Value) -> String {
    let canonical = serde_json::to_vec(&sorted(spec)).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in digest.iter().take(HASH_LEN.div_ceil(2)) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex.truncate(HASH_LEN);
    hex
}

/// A copy with every mapping's keys in order, whatever map type serde_json was built with.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Renames each template to `<name>-<hash of spec>` and moves the references to it, so a
/// changed spec yields a new template, which is what makes CAPI roll the machines.
pub fn hash_templates(objects: &mut [Value]) {
    let mut renames: HashMap<(String, String), String> = HashMap::new();
    for obj in objects.iter_mut() {
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !is_hashed_template(&kind) {
            continue;
        }
        let Some(name) = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        let hashed = format!(
            "{name}-{}",
            spec_hash(obj.get("spec").unwrap_or(&Value::Null))
        );
        obj["metadata"]["name"] = Value::String(hashed.clone());
        renames.insert((kind, name), hashed);
    }
    if renames.is_empty() {
        return;
    }
    for obj in objects.iter_mut() {
        rewrite_refs(obj, &renames);
    }
}

/// Rewrites every `{apiGroup, kind, name}` reference found anywhere in `value`.
fn rewrite_refs(value: &mut Value, renames: &HashMap<(String, String), String>) {
    match value {
        Value::Object(map) => {
            let is_ref = map.contains_key("apiGroup");
            if is_ref {
                let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                if let Some(new) = renames.get(&(kind.to_string(), name.to_string())) {
                    map.insert("name".into(), Value::String(new.clone()));
                }
            }
            for child in map.values_mut() {
                rewrite_refs(child, renames);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_ten_hex_digits_of_sorted_json() {
        let a = spec_hash(&json!({"b": 1, "a": [1, {"y": 2, "x": 1}]}));
        assert_eq!(a.len(), HASH_LEN);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, spec_hash(&json!({"a": [1, {"x": 1, "y": 2}], "b": 1})));
        assert_ne!(a, spec_hash(&json!({"a": [1, {"x": 1, "y": 3}], "b": 1})));
    }

    #[test]
    fn templates_are_renamed_and_references_follow() {
        let mut objs = vec![
            json!({"kind": "DockerMachineTemplate", "metadata": {"name": "c-md-0"}, "spec": {"x": 1}}),
            json!({"kind": "MachineDeployment", "metadata": {"name": "c-md-0"}, "spec": {"template": {"spec": {
                "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachineTemplate", "name": "c-md-0"}}}}}),
        ];
        hash_templates(&mut objs);
        let new_name = objs[0]["metadata"]["name"].as_str().unwrap().to_string();
        assert!(new_name.starts_with("c-md-0-") && new_name.len() == "c-md-0-".len() + HASH_LEN);
        assert_eq!(
            objs[1]["metadata"]["name"], "c-md-0",
            "the MachineDeployment keeps its name"
        );
        assert_eq!(
            objs[1]["spec"]["template"]["spec"]["infrastructureRef"]["name"],
            new_name.as_str()
        );
    }
}
