//! Printing plans: unified YAML diffs per object, a summary table per cluster, and
//! `--output json`.

use serde::Serialize;
use similar::TextDiff;

use super::plan::{Action, ObjectChange, Plan, Summary};
use super::redact::Redacted;
use crate::render::kinds::ObjectKey;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff, live to desired, of one object's YAML with `--- live Kind/ns/name` and
/// `+++ desired Kind/ns/name` headers; empty when both sides print the same. An absent side is
/// empty (a create shows every line added).
pub fn unified_diff(
    key: &ObjectKey,
    live: Option<&Redacted>,
    desired: Option<&Redacted>,
) -> String {
    let old = live.map(yaml).unwrap_or_default();
    let new = desired.map(yaml).unwrap_or_default();
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&format!("live {key}"), &format!("desired {key}"))
        .to_string()
}

fn yaml(obj: &Redacted) -> String {
    serde_yaml::to_string(obj.as_value())
        .unwrap_or_else(|e| format!("# cannot print this object as YAML: {e}\n"))
}

/// One cluster's changes: a line per object that is not unchanged, followed by its diff.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = format!("cluster {}\n", plan.cluster);
    let mut any = false;
    let mut after_diff = false;
    for change in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
    {
        if after_diff {
            // A blank line ends each diff that something follows.
            out.push('\n');
        }
        any = true;
        out.push_str(&change_line(change));
        out.push('\n');
        after_diff = change.diff.is_some();
        if let Some(diff) = &change.diff {
            out.push_str(diff);
        }
    }
    if !any {
        out.push_str("no changes\n");
    }
    out
}

fn change_line(change: &ObjectChange) -> String {
    let note = match change.action {
        Action::Delete => "  (left the repo; pruned)",
        Action::Orphan => "  (left the repo; kept, pass --prune to delete)",
        _ => "",
    };
    format!(
        "{} {} {}{note}",
        change.action.as_str(),
        change.stage.as_str(),
        change.key
    )
}

const COLUMNS: [(&str, Action); 5] = [
    ("CREATE", Action::Create),
    ("UPDATE", Action::Update),
    ("DELETE", Action::Delete),
    ("ORPHAN", Action::Orphan),
    ("UNCHANGED", Action::Unchanged),
];

/// A row per cluster with its counts per action, and a TOTAL row when there are several.
pub fn summary_table(plans: &[Plan]) -> String {
    let mut rows: Vec<(&str, Summary)> = plans
        .iter()
        .map(|p| (p.cluster.as_str(), p.summary()))
        .collect();
    if plans.len() > 1 {
        let total = rows
            .iter()
            .fold(Summary::default(), |acc, (_, s)| acc.plus(*s));
        rows.push(("TOTAL", total));
    }
    let name_width = rows
        .iter()
        .map(|(n, _)| n.len())
        .chain(["CLUSTER".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<name_width$}", "CLUSTER");
    for (title, _) in COLUMNS {
        out.push_str(&format!("  {title}"));
    }
    out.push('\n');
    for (name, summary) in rows {
        out.push_str(&format!("{name:<name_width$}"));
        for (title, action) in COLUMNS {
            let width = title.len();
            out.push_str(&format!("  {:>width$}", summary.count(action)));
        }
        out.push('\n');
    }
    out
}

/// What `cairn diff` prints: every cluster's changes, then the summary table, a blank line
/// between each.
pub fn render_text(plans: &[Plan]) -> String {
    let mut out = String::new();
    for plan in plans {
        out.push_str(&render_plan(plan));
        out.push('\n');
    }
    out.push_str(&summary_table(plans));
    out
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    has_changes: bool,
    summary: Summary,
    clusters: Vec<JsonPlan<'a>>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    cluster: &'a str,
    has_changes: bool,
    summary: Summary,
    changes: &'a [ObjectChange],
}

/// `--output json`: fleet totals, then per cluster its summary and changes (diffs included).
pub fn render_json(plans: &[Plan]) -> String {
    let clusters: Vec<JsonPlan> = plans
        .iter()
        .map(|p| JsonPlan {
            cluster: &p.cluster,
            has_changes: p.has_changes(),
            summary: p.summary(),
            changes: &p.changes,
        })
        .collect();
    let output = JsonOutput {
        has_changes: plans.iter().any(Plan::has_changes),
        summary: clusters
            .iter()
            .fold(Summary::default(), |acc, p| acc.plus(p.summary)),
        clusters,
    };
    // Only strings, numbers and derived structs: serializing cannot fail.
    let mut text = serde_json::to_string_pretty(&output).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::redact::redact_pair;
    use crate::model::types::StageName;
    use serde_json::json;

    fn key() -> ObjectKey {
        ObjectKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "monitoring".into(),
            name: "prometheus".into(),
        }
    }

    #[test]
    fn diff_has_headers_and_three_lines_of_context() {
        let mut spec = serde_json::Map::new();
        for i in 0..10 {
            spec.insert(format!("f{i}"), json!(i));
        }
        let old = json!({"spec": spec.clone()});
        spec.insert("f5".into(), json!(50));
        let new = json!({"spec": spec});
        let (l, d) = redact_pair(Some(&old), Some(&new));
        let text = unified_diff(&key(), l.as_ref(), d.as_ref());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "--- live Deployment/monitoring/prometheus");
        assert_eq!(lines[1], "+++ desired Deployment/monitoring/prometheus");
        assert_eq!(lines[2], "@@ -4,7 +4,7 @@");
        assert_eq!(lines[3..6], ["   f2: 2", "   f3: 3", "   f4: 4"]);
        assert_eq!(lines[6..8], ["-  f5: 5", "+  f5: 50"]);
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn identical_sides_print_nothing() {
        let obj = json!({"a": 1});
        let (l, d) = redact_pair(Some(&obj), Some(&obj));
        assert_eq!(unified_diff(&key(), l.as_ref(), d.as_ref()), "");
    }

    #[test]
    fn summary_table_aligns_and_totals() {
        let change = |action| ObjectChange {
            key: key(),
            stage: StageName::Addons,
            action,
            diff: None,
        };
        let plans = [
            Plan {
                cluster: "a-very-long-cluster".into(),
                changes: vec![change(Action::Create), change(Action::Unchanged)],
            },
            Plan {
                cluster: "b".into(),
                changes: vec![change(Action::Create), change(Action::Orphan)],
            },
        ];
        let table = summary_table(&plans);
        assert_eq!(
            table,
            "CLUSTER              CREATE  UPDATE  DELETE  ORPHAN  UNCHANGED\n\
             a-very-long-cluster       1       0       0       0          1\n\
             b                         1       0       0       1          0\n\
             TOTAL                     2       0       0       1          1\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&plans)).unwrap();
        assert_eq!(json["summary"]["create"], 2);
        assert_eq!(json["has_changes"], true);
        assert_eq!(json["clusters"][1]["changes"][1]["action"], "orphan");
        assert_eq!(json["clusters"][1]["changes"][1]["kind"], "Deployment");
        assert_eq!(json["clusters"][1]["changes"][1]["stage"], "addons");
    }
}
