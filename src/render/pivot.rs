//! The pivot stage: what a workload cluster needs before its CAPI objects move into it — the
//! agent (namespace, service account, least-privilege RBAC, config, Deployment) and the
//! `PivotPlan` that tells the mover what to move from where to where.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::capi::{BOOTSTRAP_API, CLUSTER_API, CONTROL_PLANE_API, INFRA_API, provider_kinds};
use super::finalize::service_account;
use super::kinds::{api_group, resource_name, str_at};
use crate::model::types::{Fleet, StageName};
use crate::model::validate::ResolvedCluster;

pub const AGENT_NAMESPACE: &str = "cairn-system";
pub const AGENT_NAME: &str = "cairn-agent";
pub const PIVOT_PLAN_API: &str = "cairn.dev/v1alpha1";
/// Where the agent's git credentials Secret is mounted; the Secret itself is copied from the
/// management cluster at the pivot and never rendered.
pub const CREDENTIALS_MOUNT: &str = "/etc/cairn/git-credentials";

/// The objects of the pivot stage. `addon_objects` are the add-ons the agent will manage; its
/// ClusterRole grants exactly their kinds.
pub fn pivot_objects(rc: &ResolvedCluster, fleet: &Fleet, addon_objects: &[Value]) -> Vec<Value> {
    let ns = AGENT_NAMESPACE;
    let image = fleet
        .spec
        .agent
        .as_ref()
        .map(|a| a.image.as_str())
        .unwrap_or_default();
    let source = fleet.spec.source.as_ref();
    let credentials = source.and_then(|s| s.credentials_secret.clone());
    let config = json!({
        "cluster": rc.name,
        "namespace": rc.name,
        "source": {
            "url": source.map(|s| s.url.as_str()).unwrap_or_default(),
            "branch": source.map(|s| s.branch.as_str()).unwrap_or("main"),
            "credentialsSecret": credentials,
            "credentialsPath": credentials.as_ref().map(|_| CREDENTIALS_MOUNT),
        },
    });
    let config_text = serde_yaml::to_string(&config).unwrap_or_default();
    vec![
        pivot_plan_crd(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": rc.name}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": AGENT_NAME, "namespace": ns}}),
        cluster_role(addon_objects),
        binding("ClusterRoleBinding", "ClusterRole", None),
        capi_role(rc),
        binding("RoleBinding", "Role", Some(rc.name)),
        agent_role(credentials.as_deref()),
        binding("RoleBinding", "Role", Some(ns)),
        addons_inventory_role(rc),
        binding("RoleBinding", "Role", Some(INVENTORY_NAMESPACE)),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{AGENT_NAME}-config"), "namespace": ns},
            "data": {"config.yaml": config_text},
        }),
        deployment(rc, image, credentials.as_deref()),
        pivot_plan(rc),
    ]
}

/// The git credentials Secret the agent of `pivot_stage` mounts (fleet.yaml
/// `spec.source.credentialsSecret`), if any: copied into the workload cluster at the pivot.
pub fn credentials_secret(pivot_stage: &[Value]) -> Option<&str> {
    pivot_stage
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == AGENT_NAME)?
        .pointer("/spec/template/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v["name"] == "git-credentials")?
        .pointer("/secret/secretName")?
        .as_str()
}

/// Points the agent of a bundle at another git URL (`--source-url`).
pub fn override_source_url(bundle: &mut super::Bundle, url: &str) {
    for stage in bundle
        .stages
        .iter_mut()
        .filter(|s| s.name == crate::model::types::StageName::Pivot)
    {
        stage.objects = with_source_url(&stage.objects, url);
    }
}

/// The pivot stage with the agent's git source URL replaced.
fn with_source_url(objects: &[Value], url: &str) -> Vec<Value> {
    let config_name = format!("{AGENT_NAME}-config");
    objects
        .iter()
        .map(|obj| {
            let mut obj = obj.clone();
            let is_config =
                obj["kind"] == "ConfigMap" && obj["metadata"]["name"] == config_name.as_str();
            let text = str_at(&obj, "/data/config.yaml");
            if let (true, Some(Ok(mut config))) =
                (is_config, text.map(serde_yaml::from_str::<Value>))
            {
                config["source"]["url"] = json!(url);
                obj["data"]["config.yaml"] =
                    json!(serde_yaml::to_string(&config).unwrap_or_default());
            }
            obj
        })
        .collect()
}

fn pivot_plan_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pivotplans.cairn.dev"},
        "spec": {
            "group": "cairn.dev",
            "scope": "Namespaced",
            "names": {"kind": "PivotPlan", "listKind": "PivotPlanList", "plural": "pivotplans", "singular": "pivotplan"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["cluster", "namespace", "source", "target", "moveKinds"],
                            "properties": {
                                "cluster": {"type": "string"},
                                "namespace": {"type": "string"},
                                "source": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "target": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "moveKinds": {"type": "array", "items": {
                                    "type": "object",
                                    "required": ["group", "kind"],
                                    "properties": {"group": {"type": "string"}, "kind": {"type": "string"}},
                                }},
                            },
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// Kinds that move with the cluster, as (apiVersion, kind).
pub fn move_kinds(rc: &ResolvedCluster) -> Vec<(&'static str, &'static str)> {
    let [infra_cluster, infra_template, infra_machine] =
        provider_kinds(rc.cluster().spec.infrastructure.provider);
    vec![
        (CLUSTER_API, "Cluster"),
        (CLUSTER_API, "MachineDeployment"),
        (CLUSTER_API, "MachineSet"),
        (CLUSTER_API, "Machine"),
        (CONTROL_PLANE_API, "KubeadmControlPlane"),
        (BOOTSTRAP_API, "KubeadmConfig"),
        (BOOTSTRAP_API, "KubeadmConfigTemplate"),
        (INFRA_API, infra_cluster),
        (INFRA_API, infra_template),
        (INFRA_API, infra_machine),
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
    ]
}

fn pivot_plan(rc: &ResolvedCluster) -> Value {
    let kinds: Vec<Value> = move_kinds(rc)
        .into_iter()
        .map(|(api, kind)| json!({"group": api_group(api), "kind": kind}))
        .collect();
    json!({
        "apiVersion": PIVOT_PLAN_API,
        "kind": "PivotPlan",
        "metadata": {"name": rc.name, "namespace": AGENT_NAMESPACE},
        "spec": {
            "cluster": rc.name,
            "namespace": rc.name,
            "source": {"role": "management"},
            "target": {"role": "workload", "kubeconfigSecret": format!("{}-kubeconfig", rc.name)},
            "moveKinds": kinds,
        },
    })
}

const WRITE_VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Cluster-wide rights: the add-on kinds the agent applies as itself (and nothing else),
/// impersonating the ServiceAccounts that apply the other layers, reading namespaces and CRDs,
/// and recording events. A layer applied as a ServiceAccount adds no right of its own: what it
/// may do is that account's RBAC.
fn cluster_role(addon_objects: &[Value]) -> Value {
    let mut by_group: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut accounts = BTreeSet::new();
    for obj in addon_objects {
        if let Some((_, account)) = service_account(obj) {
            accounts.insert(account);
            continue;
        }
        let api = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        by_group
            .entry(api_group(api).to_string())
            .or_default()
            .insert(resource_name(kind));
    }
    let mut rules = vec![
        json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}),
    ];
    for (group, resources) in by_group {
        let mut verbs: Vec<&str> = WRITE_VERBS.to_vec();
        // Installing RBAC that grants rights the agent does not hold needs escalate and bind.
        if group == "rbac.authorization.k8s.io" {
            verbs.extend(["escalate", "bind"]);
        }
        rules.push(json!({"apiGroups": [group], "resources": resources, "verbs": verbs}));
    }
    if !accounts.is_empty() {
        // By name only: RBAC cannot pair a name with its namespace in a ClusterRole, and the
        // layers' namespaces may not exist yet when this stage is applied.
        rules.push(json!({"apiGroups": [""], "resources": ["serviceaccounts"],
                          "resourceNames": accounts, "verbs": ["impersonate"]}));
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": AGENT_NAME},
        "rules": rules,
    })
}

/// Rights in the cluster's own namespace: its CAPI objects and the Secrets they own.
fn capi_role(rc: &ResolvedCluster) -> Value {
    let [infra_cluster, infra_template, infra_machine] =
        provider_kinds(rc.cluster().spec.infrastructure.provider);
    let rules = vec![
        json!({"apiGroups": ["cluster.x-k8s.io"], "resources": ["clusters", "machinedeployments"], "verbs": WRITE_VERBS}),
        json!({"apiGroups": ["cluster.x-k8s.io"], "resources": ["machinesets", "machines"], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["controlplane.cluster.x-k8s.io"], "resources": ["kubeadmcontrolplanes"], "verbs": WRITE_VERBS}),
        json!({"apiGroups": ["bootstrap.cluster.x-k8s.io"], "resources": ["kubeadmconfigtemplates"], "verbs": WRITE_VERBS}),
        json!({"apiGroups": ["infrastructure.cluster.x-k8s.io"],
               "resources": [resource_name(infra_cluster), resource_name(infra_template)], "verbs": WRITE_VERBS}),
        json!({"apiGroups": ["infrastructure.cluster.x-k8s.io"], "resources": [resource_name(infra_machine)], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list", "watch"]}),
        inventory_rule(rc, &[StageName::Bootstrap, StageName::Workload]),
    ];
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": AGENT_NAME, "namespace": rc.name},
        "rules": rules,
    })
}

/// Where the add-ons stage's inventory lives in a workload cluster.
const INVENTORY_NAMESPACE: &str = "kube-system";

/// Recording what a stage applied (server-side apply of `cairn-inventory-<cluster>-<stage>`),
/// by name: whatever the add-ons are, and nothing else of that namespace.
fn inventory_rule(rc: &ResolvedCluster, stages: &[StageName]) -> Value {
    let names: Vec<Value> = stages
        .iter()
        .map(|&stage| {
            crate::apply::inventory::inventory_object(rc.name, stage, &[])["metadata"]["name"]
                .clone()
        })
        .collect();
    json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": names, "verbs": ["get", "create", "update", "patch"]})
}

/// Rights in kube-system: the add-ons stage's inventory only.
fn addons_inventory_role(rc: &ResolvedCluster) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": AGENT_NAME, "namespace": INVENTORY_NAMESPACE},
        "rules": [inventory_rule(rc, &[StageName::Addons])],
    })
}

/// Rights in cairn-system: leader election, its config and plan, its git credentials only.
fn agent_role(credentials: Option<&str>) -> Value {
    let mut rules = vec![
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": WRITE_VERBS}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["cairn.dev"], "resources": ["pivotplans", "pivotplans/status"], "verbs": ["get", "list", "watch", "update", "patch"]}),
    ];
    if let Some(secret) = credentials {
        rules.push(json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get", "watch"]}));
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": AGENT_NAME, "namespace": AGENT_NAMESPACE},
        "rules": rules,
    })
}

fn binding(kind: &str, role_kind: &str, namespace: Option<&str>) -> Value {
    let mut metadata = json!({"name": AGENT_NAME});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": AGENT_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": AGENT_NAME, "namespace": AGENT_NAMESPACE}],
    })
}

/// Where the agent keeps its git mirror: the `cache` emptyDir (the root filesystem is read-only).
const STATE_DIR: &str = "/var/cache/cairn";

/// Taints the agent's pod tolerates: at pivot time the only Node is often the first
/// control-plane node, tainted by kubeadm, possibly not Ready yet (no CNI) and uninitialized
/// (no cloud controller manager yet), and the agent must run there to finish the cluster.
fn tolerations() -> Value {
    json!([
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists", "effect": "NoSchedule"},
    ])
}

/// The agent Deployment. No HTTP probes: the agent serves no endpoint; a crashed agent is
/// restarted by the kubelet, and its health is the record it keeps in the PivotPlan status.
/// It runs at `system-cluster-critical`: it is what keeps the cluster converged.
fn deployment(rc: &ResolvedCluster, image: &str, credentials: Option<&str>) -> Value {
    let labels =
        json!({"app.kubernetes.io/name": AGENT_NAME, "app.kubernetes.io/part-of": "cairn"});
    let mut mounts =
        vec![json!({"name": "config", "mountPath": "/etc/cairn/config", "readOnly": true})];
    let mut volumes =
        vec![json!({"name": "config", "configMap": {"name": format!("{AGENT_NAME}-config")}})];
    if let Some(secret) = credentials {
        mounts.push(
            json!({"name": "git-credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": true}),
        );
        volumes.push(
            json!({"name": "git-credentials", "secret": {"secretName": secret, "optional": true}}),
        );
    }
    mounts.push(json!({"name": "cache", "mountPath": STATE_DIR}));
    volumes.push(json!({"name": "cache", "emptyDir": {}}));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": AGENT_NAME, "namespace": AGENT_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": AGENT_NAME}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": AGENT_NAME,
                    "priorityClassName": "system-cluster-critical",
                    "tolerations": tolerations(),
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "agent",
                        "image": image,
                        "args": ["agent", "--cluster", rc.name, "--config", "/etc/cairn/config/config.yaml",
                                 "--state-dir", STATE_DIR],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}
