//! Diff planning on hand-made server responses: what `cairn diff` prints for creates, updates,
//! unchanged objects, prunes and orphans, Secrets and status-only drift (reviewed snapshots).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use cairn::diff::{
    Action, ObjectKey, Observed, Plan, plan_stage, render_json, render_text, summary_table,
};
use cairn::model::types::StageName;
use serde_json::{Value, json};

fn deployment(image: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "prometheus",
            "namespace": "monitoring",
            "labels": {"cairn.dev/cluster": "prod-1", "cairn.dev/stage": "addons"}
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "prometheus"}},
            "template": {
                "metadata": {"labels": {"app": "prometheus"}},
                "spec": {"containers": [{"name": "prometheus", "image": image,
                                         "ports": [{"containerPort": 9090}]}]}
            }
        }
    })
}

/// What the API server makes of an object: its own metadata, defaults and a status.
fn served(obj: &Value, resource_version: &str) -> Value {
    let mut o = obj.clone();
    let meta = &mut o["metadata"];
    meta["uid"] = json!("6b2f0e7a-0000-4000-8000-000000000001");
    meta["resourceVersion"] = json!(resource_version);
    meta["generation"] = json!(3);
    meta["creationTimestamp"] = json!("2025-06-01T10:00:00Z");
    meta["managedFields"] = json!([{"manager": "cairn", "operation": "Apply"}]);
    if o["kind"] == "Deployment" {
        o["spec"]["progressDeadlineSeconds"] = json!(600);
        o["spec"]["revisionHistoryLimit"] = json!(10);
        o["status"] = json!({"replicas": 2, "readyReplicas": 2, "observedGeneration": 3});
    }
    o
}

fn plan(changes: Vec<cairn::diff::ObjectChange>) -> Plan {
    Plan {
        cluster: "prod-1".into(),
        changes,
    }
}

fn actions(plan: &Plan) -> Vec<Action> {
    plan.changes.iter().map(|c| c.action).collect()
}

fn key(group: &str, kind: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[test]
fn create() {
    let desired = deployment("quay.io/prometheus/prometheus:v3.5.0", 2);
    let observed = [Observed {
        dry_run: Some(served(&desired, "1")),
        desired,
        live: None,
    }];
    let plan = plan(plan_stage(StageName::Addons, &observed, &[], false));
    assert_eq!(actions(&plan), [Action::Create]);
    assert!(plan.has_changes());
    let text = render_text(std::slice::from_ref(&plan));
    assert!(!text.contains("resourceVersion") && !text.contains("readyReplicas"));
    insta::assert_snapshot!("create", text);
}

#[test]
fn update_image_and_replicas() {
    let old = deployment("quay.io/prometheus/prometheus:v3.4.0", 2);
    let new = deployment("quay.io/prometheus/prometheus:v3.5.0", 3);
    let observed = [Observed {
        dry_run: Some(served(&new, "42")),
        desired: new,
        live: Some(served(&old, "41")),
    }];
    let plan = plan(plan_stage(StageName::Addons, &observed, &[], false));
    assert_eq!(actions(&plan), [Action::Update]);
    let diff = plan.changes[0].diff.as_deref().unwrap();
    assert!(diff.contains("-  replicas: 2\n+  replicas: 3\n"), "{diff}");
    assert!(
        diff.contains("+      - image: quay.io/prometheus/prometheus:v3.5.0"),
        "{diff}"
    );
    insta::assert_snapshot!("update", render_text(std::slice::from_ref(&plan)));
    insta::assert_snapshot!("update_json", render_json(std::slice::from_ref(&plan)));
}

#[test]
fn unchanged() {
    let desired = deployment("quay.io/prometheus/prometheus:v3.5.0", 2);
    let mut live = served(&desired, "41");
    live["status"]["readyReplicas"] = json!(1);
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{}"
    });
    let observed = [Observed {
        dry_run: Some(served(&desired, "41")),
        desired,
        live: Some(live),
    }];
    let plan = plan(plan_stage(StageName::Addons, &observed, &[], false));
    assert_eq!(actions(&plan), [Action::Unchanged]);
    assert!(!plan.has_changes());
    assert_eq!(plan.changes[0].diff, None);
    insta::assert_snapshot!("unchanged", render_text(std::slice::from_ref(&plan)));
}

#[test]
fn prune_and_orphan() {
    let desired = deployment("quay.io/prometheus/prometheus:v3.5.0", 2);
    let observed = [Observed {
        dry_run: Some(served(&desired, "41")),
        live: Some(served(&desired, "41")),
        desired,
    }];
    let inventory = [
        key("", "Namespace", "", "logging"),
        key("apps", "Deployment", "monitoring", "prometheus"),
        key("apps", "Deployment", "logging", "loki"),
        key("", "ConfigMap", "logging", "loki-config"),
    ];
    let pruned = plan(plan_stage(StageName::Addons, &observed, &inventory, true));
    assert_eq!(
        actions(&pruned),
        [
            Action::Unchanged,
            Action::Delete,
            Action::Delete,
            Action::Delete
        ]
    );
    assert_eq!(
        pruned.changes[3].key.kind, "Namespace",
        "namespace goes last"
    );
    assert!(pruned.has_changes());
    let kept = plan(plan_stage(StageName::Addons, &observed, &inventory, false));
    assert_eq!(
        actions(&kept),
        [
            Action::Unchanged,
            Action::Orphan,
            Action::Orphan,
            Action::Orphan
        ]
    );
    assert!(!kept.has_changes(), "orphans are not written");
    insta::assert_snapshot!("prune", render_text(&[pruned]));
    insta::assert_snapshot!("orphan", render_text(&[kept]));
}

const CANARY: &str = "CANARY-7f3a";

fn secret(data: Value, string_data: Option<Value>) -> Value {
    let mut s = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "grafana-admin", "namespace": "monitoring"},
        "type": "Opaque",
        "data": data
    });
    if let Some(sd) = string_data {
        s["stringData"] = sd;
    }
    s
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// A Secret updated (one key changed, one added, one removed, the canary unchanged), one
/// created, and one planned without a dry-run result (its stringData compared directly).
fn secret_plan() -> Plan {
    let desired = secret(
        json!({"user": b64("admin")}),
        Some(json!({"password": CANARY, "token": "new-token"})),
    );
    let mut dry_run = served(
        &secret(
            json!({"user": b64("admin"), "password": b64(CANARY), "token": b64("new-token")}),
            None,
        ),
        "8",
    );
    let mut live = served(
        &secret(
            json!({"user": b64("admin"), "password": b64(CANARY), "token": b64("old-token"),
                   "legacy": b64(CANARY)}),
            None,
        ),
        "7",
    );
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration":
            format!("{{\"stringData\":{{\"password\":\"{CANARY}\"}},\"data\":{{\"x\":\"{}\"}}}}", b64(CANARY)),
        "team": "observability"
    });
    // Server-side apply keeps what other managers own, kubectl's annotation included.
    dry_run["metadata"]["annotations"] = live["metadata"]["annotations"].clone();
    let mut created = secret(json!({"ca.crt": b64(CANARY)}), Some(json!({"key": CANARY})));
    created["metadata"]["name"] = json!("grafana-tls");
    let mut no_dry_run = desired.clone();
    no_dry_run["metadata"]["name"] = json!("grafana-admin-copy");
    let mut no_dry_run_live = live.clone();
    no_dry_run_live["metadata"]["name"] = json!("grafana-admin-copy");
    let observed = [
        Observed {
            desired,
            dry_run: Some(dry_run),
            live: Some(live),
        },
        Observed {
            dry_run: Some(served(&created, "1")),
            desired: created,
            live: None,
        },
        Observed {
            desired: no_dry_run,
            dry_run: None,
            live: Some(no_dry_run_live),
        },
    ];
    plan(plan_stage(StageName::Addons, &observed, &[], false))
}

#[test]
fn secret_change_is_redacted() {
    let plan = secret_plan();
    assert_eq!(
        actions(&plan),
        [Action::Update, Action::Create, Action::Update]
    );
    let diff = plan.changes[0].diff.as_deref().unwrap();
    assert!(
        diff.contains("-  token: <redacted>\n+  token: '<redacted: changed>'\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-  legacy: '<redacted: removed>'\n"),
        "{diff}"
    );
    assert!(diff.contains("   password: <redacted>\n"), "{diff}");
    // Without a dry-run, stringData still compares equal to the live base64 data.
    let direct = plan.changes[2].diff.as_deref().unwrap();
    assert!(direct.contains("   password: <redacted>\n"), "{direct}");
    insta::assert_snapshot!("secret", render_text(std::slice::from_ref(&plan)));
}

#[test]
fn secret_values_never_reach_any_output() {
    let plan = secret_plan();
    let plans = std::slice::from_ref(&plan);
    let outputs = [
        ("text", render_text(plans)),
        ("summary", summary_table(plans)),
        ("json", render_json(plans)),
        ("debug", format!("{plan:?}")),
    ];
    let forms = [
        CANARY.to_string(),
        b64(CANARY),
        STANDARD_NO_PAD.encode(CANARY),
        // JSON escaping of the base64 form's `=` or `/` must not hide it either.
        serde_json::to_string(&b64(CANARY)).unwrap(),
    ];
    for (name, text) in &outputs {
        assert!(!text.is_empty(), "{name} output is empty");
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{name} output leaks {form}:\n{text}"
            );
        }
    }
    // The JSON still carries the (redacted) diffs, so the check above looked at them.
    assert!(outputs[2].1.contains("<redacted: added>"));
}

#[test]
fn crd_status_only_difference_is_unchanged() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]
        }
    });
    let mut dry_run = served(&crd, "100");
    dry_run["status"] = json!({"conditions": [{"type": "Established", "status": "True"}],
                                "storedVersions": ["v1"]});
    let mut live = served(&crd, "99");
    live["status"] = json!({"conditions": [{"type": "Established", "status": "False"}],
                             "storedVersions": ["v1beta1", "v1"]});
    live["metadata"]["generation"] = json!(7);
    let observed = [Observed {
        desired: crd,
        dry_run: Some(dry_run.clone()),
        live: Some(live),
    }];
    let plan = plan(plan_stage(StageName::Addons, &observed, &[], false));
    assert_eq!(actions(&plan), [Action::Unchanged]);
    assert!(!plan.has_changes());
    insta::assert_snapshot!("crd_status_only", render_text(std::slice::from_ref(&plan)));

    // The same CRD with a spec change is an update: status alone was what got ignored.
    let mut changed = dry_run;
    changed["spec"]["scope"] = json!("Cluster");
    let observed = [Observed {
        desired: changed.clone(),
        dry_run: Some(changed),
        live: Some(observed[0].live.clone().unwrap()),
    }];
    let changes = plan_stage(StageName::Addons, &observed, &[], false);
    assert_eq!(changes[0].action, Action::Update);
    let diff = changes[0].diff.as_deref().unwrap();
    assert!(!diff.contains("Established"), "{diff}");
}
