//! What the controller and the agent may do, asked of a real kube-apiserver (RBAC on): the
//! controller's RBAC from deploy/controller.yaml, and the agent's as `cairn render` writes it
//! into a pivoted cluster's 02-pivot stage (the example's prod-vsphere-1, whose add-ons carry
//! RBAC, and a bare cluster with no add-on at all). One table of SubjectAccessReviews drives the
//! RBAC half. RBAC cannot say "namespaces cairn created", so the controller's Secret and
//! Namespace deletes are granted everywhere and narrowed by the ValidatingAdmissionPolicy of
//! deploy/controller.yaml; a SubjectAccessReview never asks admission, so the second half sends
//! the writes themselves as the controller's ServiceAccount and checks what the server admits.
//! And the narrowing costs the controller nothing it needs: under that ServiceAccount, `cairn
//! apply` bootstraps, pivots, moves back and deletes clusters.

mod common;
mod env;

use std::time::{Duration, Instant};

use cairn::kube_client::DynamicApi;
use cairn::lifecycle::namespace::CREATED_ANNOTATION;
use cairn::model::types::StageName;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Whose rights a row asks about.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// `cairn run`: ServiceAccount cairn-system/cairn-controller, deploy/controller.yaml.
    Controller,
    /// The agent of the example's prod-vsphere-1 (add-ons with ClusterRoles and bindings).
    Agent,
    /// The agent of `bare-1`, a pivoted cluster without add-ons (renamed `cairn-agent-bare` so
    /// it can live next to the other in one API server).
    BareAgent,
}

impl Who {
    fn account(self) -> &'static str {
        match self {
            Who::Controller => "cairn-controller",
            Who::Agent => "cairn-agent",
            Who::BareAgent => "cairn-agent-bare",
        }
    }

    fn user(self) -> String {
        format!("system:serviceaccount:cairn-system:{}", self.account())
    }
}

use Who::{Agent, BareAgent, Controller};

const CLUSTER: &str = "prod-vsphere-1";
const BARE: &str = "bare-1";

/// One question: may `who` `verb` the `resource[/subresource][.group]` (named `name`, if any)
/// in `namespace` (None: cluster-wide, or across namespaces)? `allowed` is RBAC's answer, and
/// `why` what the row is about.
struct Row {
    who: Who,
    verb: &'static str,
    resource: &'static str,
    namespace: Option<&'static str>,
    name: Option<&'static str>,
    allowed: bool,
    why: &'static str,
}

const fn row(
    who: Who,
    verb: &'static str,
    resource: &'static str,
    namespace: Option<&'static str>,
    allowed: bool,
    why: &'static str,
) -> Row {
    Row {
        who,
        verb,
        resource,
        namespace,
        name: None,
        allowed,
        why,
    }
}

const fn named(
    who: Who,
    verb: &'static str,
    resource: &'static str,
    namespace: &'static str,
    name: &'static str,
    allowed: bool,
    why: &'static str,
) -> Row {
    Row {
        who,
        verb,
        resource,
        namespace: Some(namespace),
        name: Some(name),
        allowed,
        why,
    }
}

const P1: Option<&str> = Some("prod-1");
const SYS: Option<&str> = Some("cairn-system");
const KS: Option<&str> = Some("kube-system");
const ALL: Option<&str> = None;

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // ---- the controller, management cluster ----
    row(Controller, "patch", "clusters.cluster.x-k8s.io", P1, true, "server-side apply of a cluster's CAPI objects"),
    row(Controller, "create", "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io", P1, true, "a new cluster's control plane"),
    row(Controller, "update", "vspheremachinetemplates.infrastructure.cluster.x-k8s.io", P1, true, "a reverse pivot replaces what it moves back"),
    row(Controller, "delete", "machines.cluster.x-k8s.io", P1, true, "a pivot deletes the source copies; prune"),
    row(Controller, "patch", "clusters/status.cluster.x-k8s.io", P1, true, "`*` covers CAPI status subresources too"),
    row(Controller, "list", "clusters.cluster.x-k8s.io", ALL, true, "which clusters left the repository"),
    row(Controller, "list", "clusterresourcesets.addons.cluster.x-k8s.io", P1, true, "a pivot discovers what moves"),
    row(Controller, "create", "ipaddressclaims.ipam.cluster.x-k8s.io", P1, true, "a reverse pivot moves IPAM claims back"),
    row(Controller, "watch", "clusters.cluster.x-k8s.io", ALL, false, "cairn polls, it never watches"),
    row(Controller, "get", "secrets", P1, true, "CAPI's <cluster>-kubeconfig"),
    row(Controller, "delete", "secrets", P1, true, "a pivot deletes the Secrets it moved out"),
    row(Controller, "create", "secrets", SYS, true, "the kubeconfig copy a pivot keeps"),
    row(Controller, "delete", "secrets", SYS, true, "a removed cluster's kept kubeconfig"),
    row(Controller, "delete", "secrets", KS, true, "RBAC cannot scope it; the admission policy refuses (table below)"),
    row(Controller, "watch", "secrets", P1, false, "no watch on Secrets"),
    row(Controller, "deletecollection", "secrets", P1, false, "one object at a time"),
    row(Controller, "patch", "configmaps", P1, true, "the bootstrap and workload inventories"),
    row(Controller, "create", "namespaces", ALL, true, "a cluster's namespace"),
    row(Controller, "delete", "namespaces", ALL, true, "a removed cluster's namespace (admission narrows it)"),
    row(Controller, "list", "namespaces", ALL, false, "never listed"),
    row(Controller, "list", "customresourcedefinitions.apiextensions.k8s.io", ALL, true, "the kinds a pivot moves"),
    row(Controller, "watch", "customresourcedefinitions.apiextensions.k8s.io", ALL, false, "polls"),
    row(Controller, "create", "customresourcedefinitions.apiextensions.k8s.io", ALL, false, "the providers own the CRDs"),
    row(Controller, "delete", "customresourcedefinitions.apiextensions.k8s.io", ALL, false, "the providers own the CRDs"),
    row(Controller, "get", "leases.coordination.k8s.io", SYS, true, "leader election"),
    row(Controller, "create", "leases.coordination.k8s.io", SYS, true, "leader election, first replica"),
    row(Controller, "update", "leases.coordination.k8s.io", SYS, true, "renew or take over"),
    row(Controller, "patch", "leases.coordination.k8s.io", SYS, true, "a follower relays a webhook"),
    row(Controller, "delete", "leases.coordination.k8s.io", SYS, false, "released by update, never deleted"),
    row(Controller, "update", "leases.coordination.k8s.io", Some("default"), false, "other components' Leases"),
    row(Controller, "create", "leases.coordination.k8s.io", KS, false, "other components' Leases"),
    row(Controller, "create", "clusterrolebindings.rbac.authorization.k8s.io", ALL, false, "no RBAC objects"),
    row(Controller, "create", "rolebindings.rbac.authorization.k8s.io", P1, false, "no RBAC objects"),
    row(Controller, "escalate", "clusterroles.rbac.authorization.k8s.io", ALL, false, "no escalate"),
    row(Controller, "bind", "clusterroles.rbac.authorization.k8s.io", ALL, false, "no bind"),
    row(Controller, "impersonate", "serviceaccounts", KS, false, "no impersonation"),
    row(Controller, "impersonate", "users", ALL, false, "no impersonation"),
    row(Controller, "create", "serviceaccounts/token", KS, false, "no tokens"),
    row(Controller, "create", "pods", P1, false, "runs nothing"),
    row(Controller, "create", "pods/exec", KS, false, "runs nothing"),
    row(Controller, "patch", "deployments.apps", SYS, false, "not even its own Deployment"),
    row(Controller, "delete", "nodes", ALL, false, "no nodes"),
    // ---- the agent of prod-vsphere-1, in its own cluster ----
    row(Agent, "create", "clusterroles.rbac.authorization.k8s.io", ALL, true, "its add-ons carry ClusterRoles"),
    row(Agent, "escalate", "clusterroles.rbac.authorization.k8s.io", ALL, true, "to install rights it does not hold: cluster-admin in practice"),
    row(Agent, "bind", "clusterroles.rbac.authorization.k8s.io", ALL, true, "to bind them: cluster-admin in practice"),
    row(Agent, "create", "clusterrolebindings.rbac.authorization.k8s.io", ALL, true, "its add-ons carry bindings"),
    row(Agent, "create", "rolebindings.rbac.authorization.k8s.io", KS, false, "no add-on is a RoleBinding"),
    row(Agent, "patch", "deployments.apps", KS, true, "an add-on kind, in any namespace"),
    row(Agent, "create", "pods", KS, false, "not an add-on kind (directly)"),
    row(Agent, "impersonate", "serviceaccounts", KS, false, "no impersonation"),
    row(Agent, "patch", "clusters.cluster.x-k8s.io", Some(CLUSTER), true, "its own Cluster, after the pivot"),
    row(Agent, "patch", "clusters.cluster.x-k8s.io", P1, false, "never another cluster's"),
    row(Agent, "delete", "machines.cluster.x-k8s.io", Some(CLUSTER), false, "Machines are CAPI's"),
    row(Agent, "get", "secrets", Some(CLUSTER), true, "its <cluster>-kubeconfig"),
    row(Agent, "patch", "secrets", Some(CLUSTER), false, "Secrets read-only"),
    row(Agent, "get", "secrets", KS, false, "no Secrets elsewhere"),
    named(Agent, "get", "secrets", "cairn-system", "fleet-git-credentials", true, "its git credentials"),
    named(Agent, "get", "secrets", "cairn-system", "cairn-webhook", false, "only those"),
    row(Agent, "patch", "pivotplans/status.cairn.dev", SYS, true, "its record"),
    row(Agent, "update", "leases.coordination.k8s.io", SYS, true, "its Lease"),
    named(Agent, "patch", "configmaps", "kube-system", "cairn-inventory-prod-vsphere-1-addons", true, "the add-ons inventory"),
    // ---- the agent of bare-1: no add-ons, so nothing but its own ----
    named(BareAgent, "get", "configmaps", "kube-system", "cairn-inventory-bare-1-addons", true, "the add-ons inventory, read"),
    named(BareAgent, "create", "configmaps", "kube-system", "cairn-inventory-bare-1-addons", true, "and recorded (server-side apply)"),
    named(BareAgent, "patch", "configmaps", "kube-system", "cairn-inventory-bare-1-addons", true, "and updated"),
    named(BareAgent, "patch", "configmaps", "kube-system", "kube-proxy", false, "nothing else of kube-system"),
    named(BareAgent, "patch", "configmaps", "bare-1", "cairn-inventory-bare-1-workload", true, "the workload inventory"),
    named(BareAgent, "patch", "configmaps", "bare-1", "cairn-inventory-bare-1-bootstrap", true, "the bootstrap inventory"),
    named(BareAgent, "patch", "configmaps", "bare-1", "other", false, "nothing else of its namespace"),
    row(BareAgent, "create", "clusterroles.rbac.authorization.k8s.io", ALL, false, "no RBAC add-ons, no RBAC rights"),
    row(BareAgent, "escalate", "clusterroles.rbac.authorization.k8s.io", ALL, false, "so no escalate"),
    row(BareAgent, "create", "deployments.apps", KS, false, "no add-ons, no workloads"),
    row(BareAgent, "patch", "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io", Some(BARE), true, "its own control plane"),
];

/// The authorizer's answer to one row.
async fn allowed(client: &kube::Client, row: &Row) -> bool {
    let (resource, group) = row.resource.split_once('.').unwrap_or((row.resource, ""));
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(row.who.user()),
            groups: Some(vec![
                "system:serviceaccounts".to_string(),
                "system:serviceaccounts:cairn-system".to_string(),
                "system:authenticated".to_string(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(row.verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                subresource,
                namespace: row.namespace.map(str::to_string),
                name: row.name.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SubjectAccessReview {} {}: {e}", row.verb, row.resource));
    answer.status.is_some_and(|s| s.allowed)
}

fn deploy_documents() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/controller.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    cairn::local::crds::parse_multi_doc(&text).unwrap()
}

/// The RBAC objects (and the namespaces and ServiceAccount they need) of a cluster's pivot
/// stage, as rendered.
fn agent_rbac(snapshot: &cairn::model::RepoSnapshot, cluster: &str) -> Vec<Value> {
    let rendered = cairn::render::render_repo(snapshot, &[cluster.to_string()]);
    assert!(!rendered.has_errors(), "{:?}", rendered.diagnostics);
    let bundle = rendered
        .bundles
        .iter()
        .find(|b| b.cluster == cluster)
        .unwrap_or_else(|| panic!("{cluster} not rendered"));
    let stage = bundle
        .stage(StageName::Pivot)
        .unwrap_or_else(|| panic!("{cluster} does not pivot"));
    stage
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "Namespace"
                        | "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .cloned()
        .collect()
}

/// A pivoted cluster with no add-on at all.
fn bare_fleet() -> cairn::model::RepoSnapshot {
    let fleet = "apiVersion: cairn.dev/v1alpha1\nkind: Fleet\nmetadata: {name: bare}\nspec:\n  \
                 defaults: {kubernetesVersion: v1.34.2}\n  agent: {image: ghcr.io/acme/cairn:0.1.0}\n  \
                 source: {url: https://git.example.com/platform/fleet.git, branch: main}\n";
    let cluster = "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata: {name: bare-1}\nspec:\n  \
                   infrastructure: {provider: docker, docker: {}}\n  \
                   controlPlane: {replicas: 1, machine: {}}\n  \
                   workers: [{name: md-0, replicas: 1, machine: {}}]\n  pivot: true\n";
    cairn::model::RepoSnapshot::from_files([
        ("fleet.yaml", fleet.as_bytes()),
        ("clusters/bare-1.yaml", cluster.as_bytes()),
    ])
}

/// Renames the agent's ServiceAccount and RBAC objects, so two renders fit one API server.
fn renamed(objects: Vec<Value>, to: &str) -> Vec<Value> {
    let from = cairn::render::pivot::AGENT_NAME;
    objects
        .into_iter()
        .map(|mut obj| {
            if obj["kind"] != "Namespace" && obj["metadata"]["name"] == from {
                obj["metadata"]["name"] = json!(to);
            }
            if obj["roleRef"]["name"] == from {
                obj["roleRef"]["name"] = json!(to);
            }
            if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
                for subject in subjects {
                    if subject["name"] == from {
                        subject["name"] = json!(to);
                    }
                }
            }
            obj
        })
        .collect()
}

/// A client authenticated as the controller's ServiceAccount (a bound token).
async fn controller_client(server: &cairn::local::ApiServer) -> kube::Client {
    cairn::kube_client::client_from_kubeconfig(&controller_kubeconfig(server).await)
        .await
        .unwrap()
}

/// A kubeconfig whose user is the controller's ServiceAccount (a bound token).
async fn controller_kubeconfig(server: &cairn::local::ApiServer) -> String {
    env::service_account_kubeconfig(server, "cairn-system", "cairn-controller").await
}

fn namespace(name: &str, cluster_label: Option<&str>) -> Value {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    if let Some(label) = cluster_label {
        ns["metadata"]["labels"] = json!({"cairn.dev/cluster": label});
    }
    ns
}

/// A namespace with cairn's record of having created it (what `remove_cluster` checks too).
fn created(mut ns: Value) -> Value {
    ns["metadata"]["annotations"] = json!({CREATED_ANNOTATION: "true"});
    ns
}

fn secret(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {"cairn.dev/cluster": "prod-1"}},
           "stringData": {"value": "x"}})
}

fn config_map(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace}, "data": {"objects": "[]"}})
}

fn capi_cluster(namespace: &str) -> Value {
    json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
           "metadata": {"name": namespace, "namespace": namespace},
           "spec": {"paused": true}})
}

fn lease(namespace: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "cairn-controller", "namespace": namespace},
           "spec": {"holderIdentity": "r1"}})
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Write {
    /// Server-side apply (a create or a patch).
    Apply,
    Delete,
}

/// What the admission policy admits of the controller's writes, every one of them allowed by
/// RBAC (the table above): (write, object, admitted?, why).
#[rustfmt::skip]
fn admission_table() -> Vec<(Write, Value, bool, &'static str)> {
    use Write::{Apply, Delete};
    vec![
        (Apply, config_map("prod-1", "cairn-inventory-prod-1-bootstrap"), true, "an inventory in a cluster's namespace"),
        (Apply, secret("prod-1", "moved-back"), true, "a reverse pivot brings a Secret back"),
        (Apply, capi_cluster("prod-1"), true, "a cluster's CAPI objects"),
        (Apply, secret("cairn-system", "prod-1-kubeconfig"), true, "the kubeconfig a pivot keeps"),
        (Apply, lease("cairn-system"), true, "leader election"),
        (Apply, namespace("prod-2", Some("prod-2")), true, "a new cluster's namespace"),
        (Apply, namespace("cairn-system", None), true, "a pivot creates cairn-system if missing"),
        (Apply, secret("kube-system", "bootstrap-token-abcdef"), false, "never into kube-system"),
        (Apply, config_map("kube-system", "kube-proxy"), false, "never into kube-system"),
        (Apply, secret("default", "x"), false, "never into default"),
        (Apply, secret("capi-system", "x"), false, "never into a provider's namespace"),
        (Apply, secret("cairn-system", "cairn-webhook"), false, "not the webhook secret"),
        (Apply, config_map("cairn-system", "x"), false, "in cairn-system only Leases and kept kubeconfigs"),
        (Apply, namespace("kube-foo", None), false, "no kube-* namespace"),
        (Apply, namespace("cert-manager", None), false, "not cert-manager's"),
        (Delete, secret("prod-1", "prod-1-ca"), true, "a pivot deletes what it moved out"),
        (Delete, config_map("prod-1", "cairn-inventory-prod-1-workload"), true, "a removed cluster's inventory"),
        (Delete, secret("cairn-system", "old-1-kubeconfig"), true, "a removed cluster's kept kubeconfig"),
        (Delete, created(namespace("gone-1", Some("gone-1"))), true, "a removed cluster's namespace, which cairn created"),
        (Delete, namespace("adopted-1", Some("adopted-1")), false, "not one that was there before the cluster"),
        (Delete, secret("kube-system", "canary"), false, "no Secret delete outside cairn's namespaces"),
        (Delete, secret("team-apps", "canary"), false, "not in a namespace cairn did not create"),
        (Delete, secret("mislabelled", "canary"), false, "not where the label names another cluster"),
        (Delete, config_map("kube-system", "canary"), false, "nor ConfigMaps"),
        (Delete, secret("cairn-system", "cairn-git-credentials"), false, "only kept kubeconfigs in cairn-system"),
        (Delete, capi_cluster("team-apps"), false, "no CAPI object outside cairn's namespaces"),
        (Delete, namespace("team-apps", None), false, "no namespace cairn did not create"),
        (Delete, created(namespace("mislabelled", Some("prod-1"))), false, "nor one labelled for another cluster"),
        (Delete, created(namespace("kube-apps", Some("kube-apps"))), false, "never kube-*, whatever its record"),
        (Delete, created(namespace("fake-system", Some("fake-system"))), false, "never *-system, whatever its record"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rbac_table_and_the_admission_policy_hold_on_a_real_api_server() {
    let root = tempfile::tempdir().unwrap();
    let mut server = env::start("rbac", root.path()).await;
    let client = server.client().await.unwrap();
    let admin = DynamicApi::new(client.clone());
    cairn::kube_client::install_crds(&admin, &env::crds(), Duration::from_secs(60))
        .await
        .unwrap();

    // The controller's manifests (namespaces first), the agents' RBAC as rendered.
    let deploy = deploy_documents();
    // The policy checks the record the code writes, under the same name.
    let policy = serde_json::to_string(&deploy).unwrap();
    assert!(
        policy.contains(CREATED_ANNOTATION),
        "the policy does not check {CREATED_ANNOTATION}"
    );
    let example = agent_rbac(&cairn::example::example_snapshot(), CLUSTER);
    let bare = renamed(agent_rbac(&bare_fleet(), BARE), BareAgent.account());
    let everything: Vec<&Value> = deploy.iter().chain(&example).chain(&bare).collect();
    for doc in everything.iter().filter(|d| d["kind"] == "Namespace") {
        admin.apply(doc, false, false).await.unwrap();
    }
    for doc in &everything {
        admin
            .apply(doc, false, false)
            .await
            .unwrap_or_else(|e| panic!("{}", cairn::errors::chain(&e)));
    }

    // The authorizer sees new bindings through an informer: wait until every answer is the
    // table's, then say which are not.
    let deadline = Instant::now() + Duration::from_secs(60);
    let wrong = loop {
        let mut wrong = Vec::new();
        for row in TABLE {
            if allowed(&client, row).await != row.allowed {
                wrong.push(format!(
                    "{:?} {} {} {}{} in {}: want {} ({})",
                    row.who,
                    if row.allowed { "may" } else { "may not" },
                    row.verb,
                    row.resource,
                    row.name.map(|n| format!("/{n}")).unwrap_or_default(),
                    row.namespace.unwrap_or("(all namespaces)"),
                    row.allowed,
                    row.why
                ));
            }
        }
        if wrong.is_empty() || Instant::now() > deadline {
            break wrong;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        wrong.is_empty(),
        "by the API server's authorizer:\n{}",
        wrong.join("\n")
    );

    // The admission half. What the rows delete exists, created as admin; namespaces cairn
    // created carry `cairn.dev/cluster: <their name>`.
    for ns in [
        namespace("prod-1", Some("prod-1")),
        created(namespace("gone-1", Some("gone-1"))),
        namespace("adopted-1", Some("adopted-1")),
        namespace("team-apps", None),
        created(namespace("mislabelled", Some("prod-1"))),
        namespace("capi-system", None),
        created(namespace("fake-system", Some("fake-system"))),
        created(namespace("kube-apps", Some("kube-apps"))),
    ] {
        admin.apply(&ns, false, false).await.unwrap();
    }
    let table = admission_table();
    for (write, obj, _, _) in &table {
        if *write == Write::Delete && obj["kind"] != "Namespace" {
            admin.apply(obj, false, false).await.unwrap();
        }
    }
    let controller = DynamicApi::new(controller_client(&server).await);
    // The policy is loaded through an informer too: a write it refuses is tried (as a dry
    // run) until it is refused.
    let probe = config_map("kube-system", "cairn-probe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while controller.apply(&probe, true, false).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the admission policy is never enforced"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut wrong = Vec::new();
    for (write, obj, admitted, why) in &table {
        let result = match write {
            Write::Apply => controller.apply(obj, false, false).await.map(|_| ()),
            Write::Delete => controller.delete(obj).await.map(|_| ()),
        };
        let what = format!("{write:?} {}", cairn::render::kinds::object_ref(obj));
        match (result, admitted) {
            (Ok(()), true) => {}
            (Ok(()), false) => wrong.push(format!("{what}: admitted, want refused ({why})")),
            (Err(e), true) => wrong.push(format!(
                "{what}: refused, want admitted ({why}): {}",
                cairn::errors::chain(&e)
            )),
            // Refused by the policy, not by RBAC or anything else.
            (Err(e), false) => {
                let message = cairn::errors::chain(&e);
                if !message.contains("ValidatingAdmissionPolicy 'cairn-controller'") {
                    wrong.push(format!("{what}: refused, but not by the policy: {message}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "as the controller's ServiceAccount:\n{}",
        wrong.join("\n")
    );
    // What was refused is still there.
    for (write, obj, admitted, _) in &table {
        if *write == Write::Delete && !admitted {
            let live = admin.get(obj).await.unwrap();
            let deleting = live
                .as_ref()
                .is_some_and(|l| l.pointer("/metadata/deletionTimestamp").is_some());
            assert!(
                live.is_some() && !deleting,
                "{} is gone",
                cairn::render::kinds::object_ref(obj)
            );
        }
    }
    server.stop();
}

/// `cairn apply` as the controller's ServiceAccount; success and the output.
fn apply_as_controller(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("apply")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("CAIRN_LOG", "warn,cairn=info")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The narrowed RBAC and the admission policy leave the controller all it needs: under its
/// ServiceAccount, with deploy/controller.yaml applied, `cairn apply` (what `cairn run` does for
/// each cluster) bootstraps a cluster that stays in the management cluster and one that pivots,
/// and `--prune` moves the pivoted one back and deletes it, its kept kubeconfig and its
/// namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_account_applies_pivots_and_removes_clusters_within_its_rights() {
    const PIVOTED: &str = "staging-aws-1";
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::Management::start(root.path(), Duration::from_millis(100)).await;
    let admin = mgmt.api.dynamic();
    let deploy = deploy_documents();
    for doc in deploy.iter().filter(|d| d["kind"] == "Namespace") {
        admin.apply(doc, false, false).await.unwrap();
    }
    for doc in &deploy {
        admin.apply(doc, false, false).await.unwrap();
    }
    let kubeconfig = root.path().join("controller.kubeconfig");
    std::fs::write(&kubeconfig, controller_kubeconfig(&mgmt.server).await).unwrap();
    // Bindings and the policy reach the server's caches through informers: wait until the
    // account may list Clusters, and a write the policy refuses is refused.
    let controller = DynamicApi::new(controller_client(&mgmt.server).await);
    let probe = config_map("kube-system", "cairn-probe");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = controller
            .list("cluster.x-k8s.io/v1beta2", "Cluster", None, None)
            .await
            .is_ok();
        let refused = controller.apply(&probe, true, false).await.is_err();
        if listed && refused {
            break;
        }
        assert!(Instant::now() < deadline, "RBAC or the policy never loaded");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let repo = root.path().join("fleet");
    std::fs::create_dir_all(&repo).unwrap();
    common::example_git_repo(&repo, &["prod/vsphere-1.yaml"]);
    let source_url = format!("file://{}", repo.display());
    let repo_arg = repo.to_str().unwrap();
    let (ok, out) = apply_as_controller(
        &kubeconfig,
        &[
            "--repo",
            repo_arg,
            "--source-url",
            &source_url,
            "--timeout",
            "180s",
        ],
    );
    assert!(ok, "cairn apply as the controller's ServiceAccount:\n{out}");
    assert!(out.contains("pivot: finish done"), "{out}");
    assert!(!out.contains("forbidden"), "{out}");

    common::git(&repo, &["rm", "-q", "clusters/staging/aws-1.yaml"]);
    common::git(&repo, &["commit", "-qm", "staging-aws-1 leaves"]);
    let (ok, out) = apply_as_controller(
        &kubeconfig,
        &["--repo", repo_arg, "--prune", "--timeout", "180s"],
    );
    assert!(
        ok,
        "cairn apply --prune as the controller's ServiceAccount:\n{out}"
    );
    assert!(
        out.contains("reverse pivot") && out.contains("deleted"),
        "{out}"
    );
    assert!(
        !out.contains("forbidden") && !out.contains("denied"),
        "{out}"
    );
    let gone = |obj: Value| async move { admin.get(&obj).await.unwrap() };
    assert_eq!(gone(cairn::render::capi::cluster_ref(PIVOTED)).await, None);
    assert_eq!(
        gone(cairn::render::capi::kubeconfig_secret(
            PIVOTED,
            "cairn-system"
        ))
        .await,
        None,
        "the kept kubeconfig is gone"
    );
    let ns = gone(namespace(PIVOTED, None)).await;
    assert!(
        ns.as_ref()
            .is_none_or(|ns| ns["metadata"]["deletionTimestamp"].is_string()),
        "the namespace is deleted: {ns:?}"
    );
    // The cluster that stays is untouched.
    assert!(
        gone(cairn::render::capi::cluster_ref("dev-docker-1"))
            .await
            .is_some()
    );
    mgmt.stop().await;
}

/// A bare cluster with a platform layer that gives team-a a ServiceAccount allowed to write
/// ConfigMaps in its namespace only, and team-a's layer, applied as that account; `apps` are
/// the tenant layer's documents.
fn tenant_fleet(apps: &str) -> cairn::model::RepoSnapshot {
    let profile = format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: tenants}}\nspec:\n  \
         layers:\n    - name: team-a-access\n      inline: |\n{access}\n    \
         - name: team-a-apps\n      namespace: team-a\n      serviceAccountName: deployer\n      \
         dependsOn: [team-a-access]\n      inline: |\n{apps}\n",
        access = indent(TEAM_A_ACCESS),
        apps = indent(apps),
    );
    let cluster = "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata: {name: bare-1}\nspec:\n  \
                   infrastructure: {provider: docker, docker: {}}\n  \
                   controlPlane: {replicas: 1, machine: {}}\n  \
                   workers: [{name: md-0, replicas: 1, machine: {}}]\n  pivot: true\n  \
                   profiles: [tenants]\n";
    let bare = bare_fleet();
    let fleet = match bare.get("fleet.yaml") {
        Some(cairn::model::snapshot::FileEntry::Text(t)) => t.to_string(),
        other => panic!("{other:?}"),
    };
    cairn::model::RepoSnapshot::from_files([
        ("fleet.yaml", fleet.as_bytes()),
        ("clusters/bare-1.yaml", cluster.as_bytes()),
        ("profiles/tenants.yaml", profile.as_bytes()),
    ])
}

const TEAM_A_ACCESS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n\
     apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: team-a}\n---\n\
     apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: deployer, namespace: team-a}\n\
     rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch, create, update, patch, delete]}]\n---\n\
     apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: deployer, namespace: team-a}\n\
     roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}\n\
     subjects: [{kind: ServiceAccount, name: deployer, namespace: team-a}]\n";

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("          {l}\n")).collect()
}

fn app_config(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         data: {{level: info}}\n"
    )
}

/// The add-ons stage of bare-1 as rendered from `snapshot`.
fn tenant_addons(snapshot: &cairn::model::RepoSnapshot) -> Vec<Value> {
    let rendered = cairn::render::render_repo(snapshot, &[BARE.to_string()]);
    assert!(!rendered.has_errors(), "{:?}", rendered.diagnostics);
    rendered.bundles[0]
        .stage(StageName::Addons)
        .unwrap()
        .objects
        .clone()
}

/// Applies bare-1's add-ons stage as its agent (the identity `agent` holds), as the agent does.
async fn apply_addons_as_agent(
    agent: &cairn::apply::api::KubeClusterApi,
    addons: &[Value],
) -> Result<cairn::apply::stage::StageReport, cairn::apply::stage::StageError> {
    cairn::apply::stage::apply_stage(
        agent,
        BARE,
        StageName::Addons,
        &cairn::apply::groups::addon_groups(addons),
        cairn::apply::stage::StageOptions {
            prune: true,
            timeout: Duration::from_secs(30),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_with_a_service_account_is_applied_as_that_account_and_only_within_its_rights() {
    use cairn::apply::api::KubeClusterApi;
    let root = tempfile::tempdir().unwrap();
    let mut server = env::start("tenant", root.path()).await;
    let client = server.client().await.unwrap();
    let admin = DynamicApi::new(client.clone());

    let snapshot = tenant_fleet(&app_config("team-a", "app-config"));
    let rbac = agent_rbac(&snapshot, BARE);
    for doc in rbac.iter().filter(|d| d["kind"] == "Namespace") {
        admin.apply(doc, false, false).await.unwrap();
    }
    for doc in &rbac {
        admin.apply(doc, false, false).await.unwrap();
    }
    // The agent may impersonate the layer's account, and holds no right of the tenant's own.
    #[rustfmt::skip]
    let rows = [
        named(Agent, "impersonate", "serviceaccounts", "team-a", "deployer", true, "the tenant layer's account"),
        named(Agent, "impersonate", "serviceaccounts", "kube-system", "coredns", false, "no other account"),
        row(Agent, "create", "configmaps", Some("team-a"), false, "the tenant's kinds are the account's"),
        row(Agent, "create", "roles.rbac.authorization.k8s.io", Some("team-a"), true, "the platform layer, as the agent"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut wrong = Vec::new();
        for row in &rows {
            if allowed(&client, row).await != row.allowed {
                wrong.push(format!(
                    "{} {} {:?}: {}",
                    row.verb, row.resource, row.name, row.why
                ));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", wrong.join("\n"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let kubeconfig = env::service_account_kubeconfig(&server, "cairn-system", "cairn-agent").await;
    let agent_client = cairn::kube_client::client_from_kubeconfig(&kubeconfig)
        .await
        .unwrap();
    let agent = KubeClusterApi::new(agent_client, false);
    // Applied as deployer: the agent alone may not create ConfigMaps in team-a.
    let report = apply_addons_as_agent(&agent, &tenant_addons(&snapshot))
        .await
        .unwrap_or_else(|e| panic!("{}", cairn::errors::chain(&e)));
    assert!(report.written() >= 5, "{report:?}");
    let cm = |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}});
    let live = admin.get(&cm("team-a", "app-config")).await.unwrap();
    assert!(live.is_some(), "the tenant's ConfigMap was applied");

    // A tenant manifest that reaches out of its namespace is refused by the API server, and
    // the error names the object and the account it was sent as.
    let escaping = format!(
        "{}---\n{}",
        app_config("team-a", "app-config"),
        app_config("kube-system", "hijack")
    );
    let err = apply_addons_as_agent(&agent, &tenant_addons(&tenant_fleet(&escaping)))
        .await
        .unwrap_err();
    let text = cairn::errors::chain(&err);
    assert!(
        text.contains("ConfigMap/kube-system/hijack")
            && text.contains("system:serviceaccount:team-a:deployer")
            && text.contains("403"),
        "{text}"
    );
    assert!(
        admin
            .get(&cm("kube-system", "hijack"))
            .await
            .unwrap()
            .is_none()
    );

    // What the tenant layer drops is pruned as the account that applied it.
    let renamed = tenant_fleet(&app_config("team-a", "app-config-2"));
    let report = apply_addons_as_agent(&agent, &tenant_addons(&renamed))
        .await
        .unwrap_or_else(|e| panic!("{}", cairn::errors::chain(&e)));
    assert_eq!(report.deleted(), 1, "{report:?}");
    assert!(
        admin
            .get(&cm("team-a", "app-config"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        admin
            .get(&cm("team-a", "app-config-2"))
            .await
            .unwrap()
            .is_some()
    );
    server.stop();
}
