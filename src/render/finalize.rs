//! The last steps of rendering a cluster: labels, the cluster's patches, and hash names for
//! machine and bootstrap templates (with the references that point at them).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::capi::is_hashed_template;
use super::kinds::object_ref;
use crate::model::diag::Diagnostic;
use crate::model::schema::dotted;
use crate::model::types::{ObjectPatch, StageName};
use crate::model::validate::ResolvedCluster;

pub const CLUSTER_LABEL: &str = "cairn.dev/cluster";
pub const STAGE_LABEL: &str = "cairn.dev/stage";
pub const LAYER_LABEL: &str = "cairn.dev/layer";
/// Hex digits of the SHA-256 that name a template.
pub const HASH_LEN: usize = 10;

/// Annotation on the objects of a layer with `wait: false`: dependents do not wait for them.
pub const NO_WAIT_ANNOTATION: &str = "cairn.dev/wait";

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

/// Applies the cluster's patches to the objects they target. Every patch must match at least
/// one object; failures name the patch, the operation and the object.
pub fn apply_patches(
    rc: &ResolvedCluster,
    stages: &mut [(StageName, Vec<Value>)],
    diags: &mut Vec<Diagnostic>,
) {
    for (i, patch) in rc.cluster().spec.patches.iter().enumerate() {
        let at = format!("/spec/patches/{i}");
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
        let mut matched = 0;
        for (stage, objects) in stages.iter_mut() {
            for obj in objects.iter_mut().filter(|o| targets(patch, *stage, o)) {
                matched += 1;
                let mut patched = obj.clone();
                match json_patch::patch(&mut patched, &ops) {
                    Ok(()) => *obj = patched,
                    Err(e) => {
                        let op = patch.patch.get(e.operation);
                        let verb = op
                            .map(|o| format!("{:?}", o.op).to_lowercase())
                            .unwrap_or_default();
                        let path = op.map(|o| o.path.as_str()).unwrap_or_default();
                        diags.push(
                            rc.source
                                .error(
                                    &format!("{at}/patch/{}", e.operation),
                                    format!(
                                        "patch `{}`: `{verb} {path}` failed on {}: {}",
                                        dotted(&at),
                                        object_ref(obj),
                                        e.kind
                                    ),
                                )
                                .help(patch_help(&verb)),
                        )
                    }
                }
            }
        }
        if matched == 0 {
            diags.push(
                rc.source
                    .error(&format!("{at}/target"), format!("patch `{}` matches no rendered object", dotted(&at)))
                    .help("target fields (apiVersion, kind, name, stage) must all match; templates match by `<cluster>-<pool>`"),
            );
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
    let field = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
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
