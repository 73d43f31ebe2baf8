//! What the server owns is not drift: the form in which live objects and dry-run results are
//! compared and printed.

use serde_json::{Map, Value};

/// The annotation `kubectl apply` keeps a full copy of the object in (Secret values included).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the API server writes.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The object without `status`, server-written metadata and the last-applied annotation, and
/// without `metadata.annotations`/`labels` when they end up empty; every map's keys sorted.
pub fn normalize(obj: &Value) -> Value {
    let mut out = sorted(obj);
    if let Some(map) = out.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                meta.remove(*field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove(LAST_APPLIED);
            }
            for field in ["annotations", "labels"] {
                let empty = match meta.get(field) {
                    Some(Value::Object(m)) => m.is_empty(),
                    Some(Value::Null) => true,
                    _ => false,
                };
                if empty {
                    meta.remove(field);
                }
            }
        }
    }
    out
}

/// A copy with every map's keys in sorted order, whatever map type serde_json was built with.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k.clone(), sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "apps",
                "uid": "2f1c",
                "resourceVersion": "812",
                "generation": 4,
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "deletionTimestamp": "2025-01-02T00:00:00Z",
                "deletionGracePeriodSeconds": 30,
                "selfLink": "/apis/apps/v1/namespaces/apps/deployments/web",
                "managedFields": [{"manager": "cairn", "operation": "Apply"}],
                "annotations": {LAST_APPLIED: "{\"kind\":\"Deployment\"}"},
                "labels": {}
            },
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 2}
        })
    }

    #[test]
    fn drops_server_fields_and_empty_maps() {
        let n = normalize(&live_deployment());
        assert_eq!(
            n,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"replicas": 2}
            })
        );
    }

    #[test]
    fn keeps_other_annotations_and_labels() {
        let mut obj = live_deployment();
        obj["metadata"]["annotations"]["team"] = json!("web");
        obj["metadata"]["labels"]["app"] = json!("web");
        let n = normalize(&obj);
        assert_eq!(n["metadata"]["annotations"], json!({"team": "web"}));
        assert_eq!(n["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn keys_come_out_sorted_at_every_depth() {
        let obj =
            json!({"spec": {"z": 1, "a": [{"y": 1, "b": 2}]}, "kind": "X", "apiVersion": "v1"});
        let text = serde_json::to_string(&normalize(&obj)).unwrap();
        assert_eq!(
            text,
            r#"{"apiVersion":"v1","kind":"X","spec":{"a":[{"b":2,"y":1}],"z":1}}"#
        );
    }

    #[test]
    fn status_only_difference_vanishes() {
        let mut other = live_deployment();
        other["status"] = json!({"readyReplicas": 0, "conditions": []});
        other["metadata"]["resourceVersion"] = json!("999");
        assert_eq!(normalize(&other), normalize(&live_deployment()));
        other["spec"]["replicas"] = json!(3);
        assert_ne!(normalize(&other), normalize(&live_deployment()));
    }
}
