//! JSON Schemas of the config kinds, generated from the Rust types, and the structural check
//! that walks them.
//!
//! serde stops at the first error of a document; a platform engineer wants every mistake at
//! once. So each document is first checked against its kind's schema by a small walker that
//! understands the subset of JSON Schema schemars emits (`$ref`, `anyOf`, `oneOf`, `enum`,
//! `const`, `type`, `properties`, `required`, `additionalProperties`, `items`, `minimum`,
//! `maximum`), collecting every finding with its JSON pointer. serde then only runs on documents
//! that passed, so its errors cannot surprise anyone.

use serde_json::Value;

use super::diag::did_you_mean;
use super::types::{Cluster, ClusterProfile, Fleet};

/// The file name under `schema/` and the schema of each config kind.
pub fn all_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("fleet.schema.json", schemars::schema_for!(Fleet).to_value()),
        (
            "cluster.schema.json",
            schemars::schema_for!(Cluster).to_value(),
        ),
        (
            "clusterprofile.schema.json",
            schemars::schema_for!(ClusterProfile).to_value(),
        ),
    ]
}

/// A schema as written to `schema/`: pretty JSON with a final newline.
pub fn schema_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema of one kind, by its `kind` field.
pub fn schema_for_kind(kind: &str) -> Option<Value> {
    Some(match kind {
        "Fleet" => schemars::schema_for!(Fleet).to_value(),
        "Cluster" => schemars::schema_for!(Cluster).to_value(),
        "ClusterProfile" => schemars::schema_for!(ClusterProfile).to_value(),
        _ => return None,
    })
}

/// One structural problem in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaFinding {
    /// JSON pointer of the offending value (or of the unknown key).
    pub pointer: String,
    /// Whether the finding is about a mapping key rather than a value.
    pub at_key: bool,
    pub message: String,
    pub help: Option<String>,
}

/// Checks `value` against `root`, returning every finding.
pub fn check(value: &Value, root: &Value) -> Vec<SchemaFinding> {
    let mut walker = Walker {
        root,
        findings: Vec::new(),
    };
    walker.walk(value, root, "");
    walker.findings
}

/// `/spec/workers/0/name` as people write it: `spec.workers[0].name`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    if out.is_empty() {
        "the document".into()
    } else {
        out
    }
}

struct Walker<'a> {
    root: &'a Value,
    findings: Vec<SchemaFinding>,
}

impl<'a> Walker<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        // A handful of hops at most; the bound keeps a malformed schema from looping.
        for _ in 0..16 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                    Some(target) => schema = target,
                    None => return &Value::Bool(true),
                },
                None => return schema,
            }
        }
        schema
    }

    fn push(&mut self, pointer: &str, at_key: bool, message: String, help: Option<String>) {
        // A document with a million unknown keys is reported in part (budget MAX_DIAGNOSTICS).
        if self.findings.len() >= super::budget::MAX_DIAGNOSTICS {
            return;
        }
        self.findings.push(SchemaFinding {
            pointer: pointer.to_string(),
            at_key,
            message,
            help,
        });
    }

    fn walk(&mut self, value: &Value, schema: &'a Value, pointer: &str) {
        let schema = self.resolve(schema);
        if schema.as_bool() == Some(true) || !schema.is_object() {
            return;
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                self.walk_alternatives(value, options, pointer);
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                self.wrong_choice(value, allowed, pointer);
                return;
            }
        }
        if let Some(types) = schema.get("type") {
            if !type_matches(value, types) {
                let expected = type_names(types);
                self.push(
                    pointer,
                    false,
                    format!(
                        "`{}` must be {expected}, found {}",
                        dotted(pointer),
                        describe(value)
                    ),
                    None,
                );
                return;
            }
        }
        self.check_bounds(value, schema, pointer);
        match value {
            Value::Object(map) => self.walk_object(map, schema, pointer),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item, item_schema, &format!("{pointer}/{i}"));
                    }
                }
            }
            _ => {}
        }
    }

    /// Accepts the value when one alternative has no findings; otherwise reports the findings of
    /// the alternative that is not just `null` (the `Option<T>` case), or a list of choices.
    fn walk_alternatives(&mut self, value: &Value, options: &'a [Value], pointer: &str) {
        let mut best: Option<Vec<SchemaFinding>> = None;
        for option in options {
            let findings = check_with_root(value, option, self.root, pointer);
            if findings.is_empty() {
                return;
            }
            let option = self.resolve(option);
            let only_null = option.get("type").and_then(Value::as_str) == Some("null");
            if !only_null && best.as_ref().is_none_or(|b| findings.len() < b.len()) {
                best = Some(findings);
            }
        }
        let consts: Vec<Value> = options
            .iter()
            .filter_map(|o| self.resolve(o).get("const").cloned())
            .collect();
        if consts.len() == options.len() {
            self.wrong_choice(value, &consts, pointer);
        } else if let Some(findings) = best {
            self.findings.extend(findings);
        }
    }

    fn wrong_choice(&mut self, value: &Value, allowed: &[Value], pointer: &str) {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let shown = value
            .as_str()
            .map(|s| format!("`{s}`"))
            .unwrap_or_else(|| describe(value));
        let help = value
            .as_str()
            .and_then(|s| did_you_mean(s, names.iter().copied()))
            .map(|s| format!("did you mean `{s}`?"));
        self.push(
            pointer,
            false,
            format!(
                "`{}` must be one of {}; found {shown}",
                dotted(pointer),
                names.join(", ")
            ),
            help,
        );
    }

    fn check_bounds(&mut self, value: &Value, schema: &Value, pointer: &str) {
        let Some(n) = value.as_f64() else { return };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                self.push(
                    pointer,
                    false,
                    format!("`{}` must be at least {min}, found {n}", dotted(pointer)),
                    None,
                );
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                self.push(
                    pointer,
                    false,
                    format!("`{}` must be at most {max}, found {n}", dotted(pointer)),
                    None,
                );
            }
        }
    }

    fn walk_object(
        &mut self,
        map: &serde_json::Map<String, Value>,
        schema: &'a Value,
        pointer: &str,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let known: Vec<&str> = properties
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        // A misspelt required field is reported once, as the unknown field with its suggestion.
        let misspelt: Vec<&str> = if additional == Some(&Value::Bool(false)) {
            map.keys()
                .filter(|k| !known.contains(&k.as_str()))
                .filter_map(|k| did_you_mean(k, known.iter().copied()))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) && !misspelt.contains(&name) {
                    // At the key that names the mapping (`controlPlane:`), which is where the
                    // field has to be added.
                    self.push(
                        pointer,
                        true,
                        format!("missing field `{name}` in {}", place_name(pointer)),
                        Some(format!("add `{name}:` to {}", place_name(pointer))),
                    );
                }
            }
        }
        for (key, child) in map {
            let child_pointer = format!("{pointer}/{}", super::yaml::escape_token(key));
            if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                self.walk(child, child_schema, &child_pointer);
            } else if additional == Some(&Value::Bool(false)) {
                let help = match did_you_mean(key, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known fields: {}", known.join(", ")),
                };
                self.push(
                    &child_pointer,
                    true,
                    format!("unknown field `{key}` in {}", place_name(pointer)),
                    Some(help),
                );
            } else if let Some(extra) = additional {
                self.walk(child, extra, &child_pointer);
            }
        }
    }
}

fn place_name(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document".into()
    } else {
        format!("`{}`", dotted(pointer))
    }
}

fn check_with_root(
    value: &Value,
    schema: &Value,
    root: &Value,
    pointer: &str,
) -> Vec<SchemaFinding> {
    let mut walker = Walker {
        root,
        findings: Vec::new(),
    };
    walker.walk(value, schema, pointer);
    walker.findings
}

fn type_matches(value: &Value, types: &Value) -> bool {
    match types {
        Value::String(t) => one_type_matches(value, t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .any(|t| one_type_matches(value, t)),
        _ => true,
    }
}

fn one_type_matches(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

fn type_names(types: &Value) -> String {
    let names: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    names
        .iter()
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "boolean" => "true or false",
            "integer" => "a whole number",
            "number" => "a number",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A short description of a value for messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(40).collect();
            format!("the string \"{shown}\"")
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster_schema() -> Value {
        schema_for_kind("Cluster").unwrap()
    }

    fn minimal_cluster() -> Value {
        json!({
            "apiVersion": "cairn.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "a"},
            "spec": {
                "infrastructure": {"provider": "docker", "docker": {}},
                "controlPlane": {"replicas": 1, "machine": {}}
            }
        })
    }

    #[test]
    fn a_valid_document_has_no_findings() {
        assert_eq!(check(&minimal_cluster(), &cluster_schema()), vec![]);
    }

    #[test]
    fn every_problem_is_found_at_once() {
        let mut doc = minimal_cluster();
        doc["spec"]["controlPlane"]["replica"] = json!(3);
        doc["spec"]["controlPlane"]["replicas"] = json!("three");
        doc["spec"]["infrastructure"]["provider"] = json!("dokcer");
        doc["spec"]["workers"] = json!([{"name": "md-0", "machine": {}}]);
        let findings = check(&doc, &cluster_schema());
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(findings.len(), 4, "{messages:#?}");
        assert!(messages.contains(&"unknown field `replica` in `spec.controlPlane`"));
        assert!(messages.contains(
            &"`spec.controlPlane.replicas` must be a whole number, found the string \"three\""
        ));
        assert!(messages.contains(&"missing field `replicas` in `spec.workers[0]`"));
        let provider = findings
            .iter()
            .find(|f| f.pointer == "/spec/infrastructure/provider")
            .unwrap();
        assert_eq!(provider.help.as_deref(), Some("did you mean `docker`?"));
        let unknown = findings
            .iter()
            .find(|f| f.message.starts_with("unknown field"))
            .unwrap();
        assert_eq!(unknown.help.as_deref(), Some("did you mean `replicas`?"));
    }

    #[test]
    fn optional_blocks_report_their_inner_errors() {
        let mut doc = minimal_cluster();
        doc["spec"]["controlPlane"]["endpoint"] = json!({"host": 5});
        let findings = check(&doc, &cluster_schema());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].pointer, "/spec/controlPlane/endpoint/host");
    }

    #[test]
    fn dotted_paths_read_naturally() {
        assert_eq!(dotted("/spec/workers/0/name"), "spec.workers[0].name");
        assert_eq!(dotted(""), "the document");
    }
}
