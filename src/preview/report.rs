//! The preview as JSON (`--format json`): stable and versioned (`"version": 1`); fields are only
//! ever added within a version. Object keys come out sorted, arrays in the preview's order, so
//! the same preview always prints the same text.

use serde_json::{Value, json};

use super::markdown::lines;
use super::{JSON_VERSION, Preview};

/// The preview as a JSON value (see the README for the fields). Secret values are never in it.
pub fn json(preview: &Preview) -> Value {
    // Only strings, numbers, booleans and derived structs: serializing cannot fail.
    let mut out = serde_json::to_value(preview).unwrap_or_else(|_| json!({}));
    if let Some(map) = out.as_object_mut() {
        map.insert("version".into(), json!(JSON_VERSION));
        map.insert("valid".into(), json!(preview.head_valid()));
        map.insert("has_changes".into(), json!(preview.has_changes()));
        if let Some(Value::Array(clusters)) = map.get_mut("clusters") {
            for (value, cluster) in clusters.iter_mut().zip(&preview.clusters) {
                if let Some(c) = value.as_object_mut() {
                    c.insert("impact".into(), json!(lines(cluster, true)));
                }
            }
        }
    }
    out
}
