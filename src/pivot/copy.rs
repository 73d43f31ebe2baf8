//! PURE: an object as it is created in the target of a move: server-set metadata and status
//! dropped (the target's controllers rebuild status), the journal annotation left behind, and
//! ownerReferences pointing at the owners' new uids.

use serde_json::{Value, json};

use super::steps::JOURNAL_ANNOTATION;
use crate::render::kinds::{ObjectKey, api_group};

const SERVER_SET: [&str; 6] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

/// The key of the object an ownerReference names (owners share their dependent's namespace).
pub fn owner_key(owner_ref: &Value, namespace: &str) -> ObjectKey {
    let text = |field: &str| owner_ref[field].as_str().unwrap_or_default().to_string();
    ObjectKey {
        group: api_group(&text("apiVersion")).to_string(),
        kind: text("kind"),
        namespace: namespace.to_string(),
        name: text("name"),
    }
}

/// The copy of `obj` to create in the target. `new_uid` gives an owner's uid in the target; an
/// owner it does not know is left out rather than left dangling (the target's garbage
/// collector would delete an object whose owner uid does not exist).
pub fn target_copy(obj: &Value, new_uid: impl Fn(&ObjectKey) -> Option<String>) -> Value {
    let mut copy = obj.clone();
    let Some(map) = copy.as_object_mut() else {
        return copy;
    };
    map.remove("status");
    // A Cluster always arrives paused, whatever the copy it was read from says: the target's
    // controllers must not act before every object is there (the unpause step releases it).
    if obj["kind"] == "Cluster"
        && api_group(obj["apiVersion"].as_str().unwrap_or_default()) == "cluster.x-k8s.io"
        && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("paused".into(), Value::Bool(true));
    }
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
        return copy;
    };
    for field in SERVER_SET {
        meta.remove(field);
    }
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(JOURNAL_ANNOTATION);
        annotations.remove(super::checks::DELETE_FOR_MOVE_ANNOTATION);
    }
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        let rewritten: Vec<Value> = refs
            .iter()
            .filter_map(|r| {
                let uid = new_uid(&owner_key(r, &namespace))?;
                let mut r = r.clone();
                r["uid"] = json!(uid);
                Some(r)
            })
            .collect();
        if rewritten.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), Value::Array(rewritten));
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_fields_and_status_go_and_owners_get_new_uids() {
        let machine = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {
                "name": "m0", "namespace": "c", "uid": "old-m0", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "x"}],
                "annotations": {JOURNAL_ANNOTATION: "{}", "keep": "me"},
                "finalizers": ["machine.cluster.x-k8s.io"],
                "ownerReferences": [
                    {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
                     "name": "c-control-plane", "uid": "old-kcp", "controller": true, "blockOwnerDeletion": true},
                    {"apiVersion": "example.com/v1", "kind": "Gone", "name": "g", "uid": "old-g"},
                ],
            },
            "spec": {"clusterName": "c"},
            "status": {"nodeRef": {"name": "n0"}},
        });
        let copy = target_copy(&machine, |key| {
            (key.kind == "KubeadmControlPlane"
                && key.namespace == "c"
                && key.name == "c-control-plane")
                .then(|| "new-kcp".to_string())
        });
        assert_eq!(
            copy,
            json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {
                    "name": "m0", "namespace": "c",
                    "annotations": {"keep": "me"},
                    "finalizers": ["machine.cluster.x-k8s.io"],
                    "ownerReferences": [
                        {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
                         "name": "c-control-plane", "uid": "new-kcp", "controller": true, "blockOwnerDeletion": true},
                    ],
                },
                "spec": {"clusterName": "c"},
            })
        );
    }

    #[test]
    fn a_cluster_arrives_paused_even_when_read_unpaused() {
        let cluster = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                             "metadata": {"name": "c", "namespace": "c"}, "spec": {"paused": false}});
        assert_eq!(target_copy(&cluster, |_| None)["spec"]["paused"], true);
        let other = json!({"apiVersion": "example.com/v1", "kind": "Cluster",
                           "metadata": {"name": "c", "namespace": "c"}, "spec": {}});
        assert!(
            target_copy(&other, |_| None)["spec"]
                .get("paused")
                .is_none()
        );
    }

    #[test]
    fn an_object_whose_owners_are_all_unknown_has_none() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "c", "ownerReferences": [
                {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}]}});
        let copy = target_copy(&secret, |_| None);
        assert!(copy.pointer("/metadata/ownerReferences").is_none());
    }
}
