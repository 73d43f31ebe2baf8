//! Secret values never reach a diff, a summary or JSON output (DESIGN.md §4).
//!
//! [`Redacted`] is the only input the diff printer takes, and [`redact_pair`] is the only way to
//! make one, so an unmasked Secret cannot be printed by mistake.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::normalize::LAST_APPLIED;
use crate::render::kinds::api_group;

/// A key whose value is the same on both sides.
pub const UNCHANGED: &str = "<redacted>";
/// A key whose value differs (shown on the desired side; the live side shows [`UNCHANGED`]'s
/// text so that the diff has a line to mark).
pub const CHANGED: &str = "<redacted: changed>";
/// A key only the desired side has.
pub const ADDED: &str = "<redacted: added>";
/// A key only the live side has.
pub const REMOVED: &str = "<redacted: removed>";

/// An object that is safe to print.
#[derive(Clone, Debug, PartialEq)]
pub struct Redacted(Value);

impl Redacted {
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

/// A core-group `Secret` (`apiVersion: v1`). Anything in the core group named Secret counts, so a
/// missing or odd version never lets values through.
pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && api_group(obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")).is_empty()
}

/// Masks the Secret values of the live and desired side of one object; other kinds pass through.
///
/// On each side `stringData` is folded into `data` (as the API server does) and every value is
/// replaced by a marker: [`UNCHANGED`] when both sides hold the same bytes (a `stringData` value
/// and its base64 `data` form count as the same), [`CHANGED`] on the desired side when they
/// differ, [`ADDED`] for keys only desired has and [`REMOVED`] for keys only live has. Either
/// side may be absent (a create or a delete).
pub fn redact_pair(
    live: Option<&Value>,
    desired: Option<&Value>,
) -> (Option<Redacted>, Option<Redacted>) {
    if !live.is_some_and(is_secret) && !desired.is_some_and(is_secret) {
        return (live.cloned().map(Redacted), desired.cloned().map(Redacted));
    }
    let old = live.map(secret_values).unwrap_or_default();
    let new = desired.map(secret_values).unwrap_or_default();
    (
        live.map(|obj| Redacted(mask(obj, &old, &new, Side::Live))),
        desired.map(|obj| Redacted(mask(obj, &new, &old, Side::Desired))),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Live,
    Desired,
}

/// A Secret value as compared, never printed.
#[derive(PartialEq)]
enum Secret {
    Bytes(Vec<u8>),
    /// A `data` string that is not valid base64; never equal to decoded bytes.
    Undecodable(String),
    /// Not a string at all.
    Other(String),
}

fn secret_values(obj: &Value) -> BTreeMap<String, Secret> {
    let mut values = BTreeMap::new();
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let value = match v {
                Value::String(s) => match STANDARD.decode(s) {
                    Ok(bytes) => Secret::Bytes(bytes),
                    Err(_) => Secret::Undecodable(s.clone()),
                },
                other => Secret::Other(other.to_string()),
            };
            values.insert(k.clone(), value);
        }
    }
    // stringData wins over data for the same key, as on the server.
    if let Some(data) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            let value = match v {
                Value::String(s) => Secret::Bytes(s.as_bytes().to_vec()),
                other => Secret::Other(other.to_string()),
            };
            values.insert(k.clone(), value);
        }
    }
    values
}

fn mask(
    obj: &Value,
    this: &BTreeMap<String, Secret>,
    other: &BTreeMap<String, Secret>,
    side: Side,
) -> Value {
    let mut out = obj.clone();
    let Some(map) = out.as_object_mut() else {
        return Value::String(UNCHANGED.into());
    };
    // The last-applied annotation holds the whole object, values included.
    if let Some(annotations) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let malformed = [map.remove("data"), map.remove("stringData")]
        .iter()
        .flatten()
        .any(|v| !v.is_object() && !v.is_null());
    if !this.is_empty() || malformed {
        let mut data = Map::new();
        for (key, ours) in this {
            let marker = match (other.get(key), side) {
                (Some(theirs), _) if theirs == ours => UNCHANGED,
                (Some(_), Side::Live) => UNCHANGED,
                (Some(_), Side::Desired) => CHANGED,
                (None, Side::Live) => REMOVED,
                (None, Side::Desired) => ADDED,
            };
            data.insert(key.clone(), Value::String(marker.into()));
        }
        if malformed {
            // `data` or `stringData` that is not a map: say so without showing it.
            data.insert("<malformed>".into(), Value::String(UNCHANGED.into()));
        }
        map.insert("data".into(), Value::Object(data));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn secret(data: Value, string_data: Value) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "db", "namespace": "apps"}, "type": "Opaque"});
        if !data.is_null() {
            s["data"] = data;
        }
        if !string_data.is_null() {
            s["stringData"] = string_data;
        }
        s
    }

    #[test]
    fn marks_each_key_by_what_happened_to_it() {
        let live = secret(
            json!({"same": b64("a"), "changed": b64("old"), "gone": b64("x")}),
            Value::Null,
        );
        let desired = secret(
            json!({"changed": b64("new")}),
            json!({"same": "a", "new": "n"}),
        );
        let (l, d) = redact_pair(Some(&live), Some(&desired));
        let (l, d) = (l.unwrap(), d.unwrap());
        assert_eq!(
            l.as_value()["data"],
            json!({"same": UNCHANGED, "changed": UNCHANGED, "gone": REMOVED})
        );
        assert_eq!(
            d.as_value()["data"],
            json!({"same": UNCHANGED, "changed": CHANGED, "new": ADDED})
        );
        assert!(d.as_value().get("stringData").is_none());
        assert_eq!(d.as_value()["type"], "Opaque");
    }

    #[test]
    fn string_data_and_equal_base64_data_are_the_same_value() {
        let live = secret(json!({"password": b64("hunter2")}), Value::Null);
        let desired = secret(Value::Null, json!({"password": "hunter2"}));
        let (l, d) = redact_pair(Some(&live), Some(&desired));
        assert_eq!(l.unwrap().as_value(), d.unwrap().as_value());
    }

    #[test]
    fn invalid_base64_never_equals_its_plain_text() {
        let live = secret(json!({"k": "not base64!"}), Value::Null);
        let desired = secret(Value::Null, json!({"k": "not base64!"}));
        let (_, d) = redact_pair(Some(&live), Some(&desired));
        assert_eq!(d.unwrap().as_value()["data"]["k"], CHANGED);
    }

    #[test]
    fn one_side_only() {
        let s = secret(json!({"a": b64("1")}), json!({"b": "2"}));
        let (l, d) = redact_pair(None, Some(&s));
        assert!(l.is_none());
        assert_eq!(
            d.unwrap().as_value()["data"],
            json!({"a": ADDED, "b": ADDED})
        );
        let (l, d) = redact_pair(Some(&s), None);
        assert!(d.is_none());
        assert_eq!(
            l.unwrap().as_value()["data"],
            json!({"a": REMOVED, "b": REMOVED})
        );
    }

    #[test]
    fn last_applied_and_malformed_data_are_masked() {
        let mut s = secret(json!("c2VjcmV0"), Value::Null);
        s["metadata"]["annotations"] = json!({LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}"});
        let (l, _) = redact_pair(Some(&s), None);
        let text = serde_json::to_string(l.unwrap().as_value()).unwrap();
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("<malformed>"), "{text}");
    }

    #[test]
    fn other_kinds_pass_through() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        let (l, d) = redact_pair(Some(&cm), Some(&cm));
        assert_eq!(l.unwrap().as_value(), &cm);
        assert_eq!(d.unwrap().as_value(), &cm);
        // A Secret kind in another group is not a core Secret.
        let other = json!({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}});
        assert!(!is_secret(&other));
        assert!(is_secret(&json!({"apiVersion": "v1", "kind": "Secret"})));
    }
}
