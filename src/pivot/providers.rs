//! What a move installs in its target before anything moves (`install-providers`): the provider
//! components the source runs, found by the labels `clusterctl init` puts on every object it
//! installs (`cluster.x-k8s.io/provider`; `clusterctl.cluster.x-k8s.io/core` on cert-manager's
//! and on clusterctl's inventory CRD), the `Provider` inventory objects among them; and clusterctl's
//! `checkTargetProviders`: the target's providers must not be older than the source's.
//!
//! Listing is I/O over [`ClusterApi`]; the comparison and the copies are pure.

use std::collections::BTreeSet;

use serde_json::Value;

use super::copy::target_copy;
use crate::apply::api::{ApiError, ClusterApi};
use crate::render::kinds::{ObjectKey, label, str_at};

/// The label clusterctl puts on every object of a provider: its manifest label
/// (`cluster-api`, `bootstrap-kubeadm`, `infrastructure-aws`, ...).
pub const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";
/// clusterctl's own objects: `inventory` (the `Provider` objects) or `cert-manager`.
pub const CORE_LABEL: &str = "clusterctl.cluster.x-k8s.io/core";
pub const INVENTORY_API: &str = "clusterctl.cluster.x-k8s.io/v1alpha3";

/// The kinds provider components are made of, in the order they are installed (Namespaces
/// first, found through the others; see [`components`]): what others
/// refer to first, the workloads after their accounts and Secrets, the webhook configurations
/// after the Deployments that serve them, the inventory last (clusterctl writes it last too).
pub const COMPONENT_KINDS: [(&str, &str); 17] = [
    ("v1", "Namespace"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Service"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("apps/v1", "Deployment"),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (INVENTORY_API, "Provider"),
];

/// One provider as clusterctl's inventory records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledProvider {
    /// The manifest label, which is also the inventory object's name.
    pub label: String,
    pub namespace: String,
    /// `cluster-api`, `kubeadm`, `aws`, ...
    pub name: String,
    /// `CoreProvider`, `BootstrapProvider`, `ControlPlaneProvider`, `InfrastructureProvider`.
    pub provider_type: String,
    pub version: String,
}

impl InstalledProvider {
    fn of(inventory: &Value) -> InstalledProvider {
        let text = |at: &str| str_at(inventory, at).unwrap_or_default().to_string();
        InstalledProvider {
            label: text("/metadata/name"),
            namespace: text("/metadata/namespace"),
            name: text("/providerName"),
            provider_type: text("/type"),
            version: text("/version"),
        }
    }

    /// clusterctl's `SameAs`: one provider, wherever and at whatever version it is installed.
    fn same_as(&self, other: &InstalledProvider) -> bool {
        self.name == other.name && self.provider_type == other.provider_type
    }
}

/// A list of a kind the server may not serve (no CRD yet): empty then.
async fn list_served(
    api: &impl ClusterApi,
    (api_version, kind): (&str, &str),
    selector: &str,
) -> Result<Vec<Value>, ApiError> {
    match api.list(api_version, kind, None, Some(selector)).await {
        Err(e) if e.is_unknown_kind() => Ok(Vec::new()),
        other => other,
    }
}

/// The providers clusterctl's inventory in `api` lists.
pub async fn inventory(api: &impl ClusterApi) -> Result<Vec<InstalledProvider>, ApiError> {
    let listed = list_served(api, (INVENTORY_API, "Provider"), PROVIDER_LABEL).await?;
    Ok(listed.iter().map(InstalledProvider::of).collect())
}

/// Every provider and cert-manager object in `api`, in [`COMPONENT_KINDS`] order. Their
/// Namespaces are read one by one, as the namespaces of what was listed: listing Namespaces
/// is a right the controller does not need otherwise.
pub async fn components(api: &impl ClusterApi) -> Result<Vec<Value>, ApiError> {
    let listed_kinds = COMPONENT_KINDS
        .iter()
        .filter(|(_, kind)| *kind != "Namespace");
    let lists = listed_kinds.flat_map(|kind| {
        [PROVIDER_LABEL, CORE_LABEL].map(|selector| list_served(api, *kind, selector))
    });
    // All at once: a server's first list of a kind waits for its watch cache.
    let listed = futures::future::try_join_all(lists).await?;
    let mut seen = BTreeSet::new();
    let objects: Vec<Value> = listed
        .into_iter()
        .flatten()
        .filter(|obj| seen.insert(ObjectKey::of(obj)))
        .collect();
    let namespaces: BTreeSet<&str> = objects
        .iter()
        .filter_map(|obj| str_at(obj, "/metadata/namespace"))
        .collect();
    let mut components = Vec::new();
    for namespace in namespaces {
        let stub = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        components.extend(api.get(&stub).await?);
    }
    components.extend(objects);
    Ok(components)
}

/// What the target must have before the move, as clusterctl's `checkTargetProviders` words
/// it: every source provider installed there at least at the source's version. A provider the
/// target lacks is not a problem here, since `install-providers` installs it.
pub fn older_in_target(source: &[InstalledProvider], target: &[InstalledProvider]) -> Vec<String> {
    let mut problems = Vec::new();
    for wanted in source {
        let newest = target
            .iter()
            .filter(|t| t.same_as(wanted))
            .filter_map(|t| Some((parse(&t.version)?, t)))
            .max_by(|a, b| a.0.cmp(&b.0));
        let Some((have, installed)) = newest else {
            continue;
        };
        match parse(&wanted.version) {
            Some(need) if have >= need => {}
            Some(_) => problems.push(format!(
                "provider {} in the target is older than in the source (source: {}, target: {} in namespace {})",
                wanted.label, wanted.version, installed.version, installed.namespace
            )),
            None => problems.push(format!(
                "provider {} in the source has version {:?}, which is not a semantic version",
                wanted.label, wanted.version
            )),
        }
    }
    problems
}

fn parse(version: &str) -> Option<semver::Version> {
    semver::Version::parse(version.strip_prefix('v').unwrap_or(version)).ok()
}

/// The taint of a control-plane Node, which the providers' own Deployments tolerate.
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// The copy of a component to create in the target: as [`target_copy`], without what the
/// source's API server assigned to it (a Service's cluster IPs are from the source's range),
/// and a Deployment made to tolerate the control-plane taint. cairn moves a cluster into itself
/// as soon as its first control-plane Node is Ready (its workers are created by the providers
/// after the move), so a Deployment that does not tolerate it, as cert-manager's static manifest
/// does not, would never run there.
pub fn component_copy(obj: &Value) -> Value {
    let mut copy = target_copy(obj, |_| None);
    match obj["kind"].as_str() {
        Some("Service") => {
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
        Some("Deployment") => tolerate_control_plane(&mut copy),
        _ => {}
    }
    copy
}

fn tolerate_control_plane(deployment: &mut Value) {
    let Some(pod) = deployment
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let tolerations = pod
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if tolerations.is_null() {
        *tolerations = Value::Array(Vec::new());
    }
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    let covered = list.iter().any(|t| {
        let key = str_at(t, "/key").unwrap_or_default();
        let effect = str_at(t, "/effect").unwrap_or_default();
        (key == CONTROL_PLANE_TAINT || (key.is_empty() && str_at(t, "/operator") == Some("Exists")))
            && (effect.is_empty() || effect == "NoSchedule")
    });
    if !covered {
        list.push(serde_json::json!({"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}));
    }
}

/// One phase of `install-providers`, and the names of its waits.
#[derive(Debug, PartialEq)]
pub struct InstallPhase<'a> {
    /// Namespaces and CRDs, created first (the CRDs then waited Established).
    pub definitions: Vec<&'a Value>,
    /// Everything else, in [`COMPONENT_KINDS`] order.
    pub rest: Vec<&'a Value>,
    pub establish_step: &'static str,
    pub deployments_step: &'static str,
}

impl InstallPhase<'_> {
    /// The Deployments among [`rest`](Self::rest), waited Available before the next phase.
    pub fn deployments(&self) -> impl Iterator<Item = &Value> {
        self.rest
            .iter()
            .copied()
            .filter(|obj| obj["kind"] == "Deployment")
    }
}

/// How `install-providers` installs `components` (as [`components`] lists them): cert-manager
/// first, its Deployments Available before any provider object is created, as `clusterctl
/// init` does (cert-manager's webhook admits the providers' Issuers and Certificates, and
/// cert-manager issues the serving certificates their webhooks mount), then the providers.
pub fn install_phases(components: &[Value]) -> [InstallPhase<'_>; 2] {
    let (cert_manager, providers): (Vec<&Value>, Vec<&Value>) = components
        .iter()
        .partition(|obj| label(obj, CORE_LABEL) == Some("cert-manager"));
    fn phase<'a>(
        objects: Vec<&'a Value>,
        establish_step: &'static str,
        deployments_step: &'static str,
    ) -> InstallPhase<'a> {
        let (definitions, rest) = objects.into_iter().partition(|obj| {
            matches!(
                obj["kind"].as_str(),
                Some("Namespace" | "CustomResourceDefinition")
            )
        });
        InstallPhase {
            definitions,
            rest,
            establish_step,
            deployments_step,
        }
    }
    [
        phase(
            cert_manager,
            "establish cert-manager's CRDs",
            "wait for cert-manager's Deployments",
        ),
        phase(
            providers,
            "establish the provider CRDs",
            "wait for the provider Deployments",
        ),
    ]
}

/// The provider a component belongs to (`cert-manager` for cert-manager's).
pub fn provider_of(obj: &Value) -> &str {
    label(obj, PROVIDER_LABEL)
        .or_else(|| label(obj, CORE_LABEL))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_deployment_copy_tolerates_the_control_plane_once() {
        let deployment = |tolerations: Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "cert-manager", "namespace": "cert-manager"},
                "spec": {"template": {"spec": {"tolerations": tolerations, "containers": []}}}})
        };
        let tolerations = |obj: &Value| obj["spec"]["template"]["spec"]["tolerations"].clone();
        // cert-manager's static manifest: none; the copy gets the control-plane one.
        let copy = component_copy(&deployment(Value::Null));
        assert_eq!(
            tolerations(&copy),
            serde_json::json!([{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}])
        );
        // The providers' own: left as they are.
        let capi = serde_json::json!([{"key": CONTROL_PLANE_TAINT, "effect": "NoSchedule"}]);
        assert_eq!(
            tolerations(&component_copy(&deployment(capi.clone()))),
            capi
        );
        let everything = serde_json::json!([{"operator": "Exists"}]);
        assert_eq!(
            tolerations(&component_copy(&deployment(everything.clone()))),
            everything
        );
        // Another taint's toleration is kept, and the control plane's added.
        let other =
            serde_json::json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]);
        assert_eq!(
            tolerations(&component_copy(&deployment(other)))
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn cert_manager_is_installed_and_waited_before_any_provider_object() {
        let obj = |kind: &str, name: &str, labels: Value| serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "labels": labels}});
        let cm = serde_json::json!({CORE_LABEL: "cert-manager"});
        let capi = serde_json::json!({PROVIDER_LABEL: "cluster-api"});
        let components = [
            obj("Namespace", "cert-manager", cm.clone()),
            obj("Namespace", "capi-system", capi.clone()),
            obj("Namespace", "kube-system", Value::Null),
            obj(
                "CustomResourceDefinition",
                "certificates.cert-manager.io",
                cm.clone(),
            ),
            obj(
                "CustomResourceDefinition",
                "clusters.cluster.x-k8s.io",
                capi.clone(),
            ),
            obj("Role", "cert-manager:leaderelection", cm.clone()),
            obj("Certificate", "capi-serving-cert", capi.clone()),
            obj("Deployment", "cert-manager-webhook", cm.clone()),
            obj("Deployment", "capi-controller-manager", capi.clone()),
        ];
        let names = |objects: &[&Value]| -> Vec<String> {
            objects
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        let [cert_manager, providers] = install_phases(&components);
        assert_eq!(
            names(&cert_manager.definitions),
            ["cert-manager", "certificates.cert-manager.io"]
        );
        assert_eq!(
            names(&cert_manager.rest),
            ["cert-manager:leaderelection", "cert-manager-webhook"]
        );
        assert_eq!(
            cert_manager
                .deployments()
                .map(|d| d["metadata"]["name"].clone())
                .collect::<Vec<_>>(),
            ["cert-manager-webhook"]
        );
        assert_eq!(
            names(&providers.definitions),
            ["capi-system", "kube-system", "clusters.cluster.x-k8s.io"]
        );
        assert_eq!(
            names(&providers.rest),
            ["capi-serving-cert", "capi-controller-manager"]
        );
    }

    fn installed(label: &str, version: &str) -> InstalledProvider {
        let (name, provider_type) = match label {
            "cluster-api" => ("cluster-api", "CoreProvider"),
            "bootstrap-kubeadm" => ("kubeadm", "BootstrapProvider"),
            "control-plane-kubeadm" => ("kubeadm", "ControlPlaneProvider"),
            _ => ("docker", "InfrastructureProvider"),
        };
        InstalledProvider {
            label: label.into(),
            namespace: "ns".into(),
            name: name.into(),
            provider_type: provider_type.into(),
            version: version.into(),
        }
    }

    #[test]
    fn a_target_provider_older_than_the_source_is_refused() {
        let source = [
            installed("cluster-api", "v1.14.2"),
            installed("bootstrap-kubeadm", "v1.14.2"),
        ];
        let cases: [(&[InstalledProvider], usize); 5] = [
            (&[], 0),
            (&[installed("cluster-api", "v1.14.2")], 0),
            (&[installed("cluster-api", "v1.15.0")], 0),
            (&[installed("cluster-api", "v1.14.1")], 1),
            // clusterctl's SameAs: the control-plane kubeadm is not the bootstrap kubeadm.
            (
                &[
                    installed("control-plane-kubeadm", "v1.13.0"),
                    installed("bootstrap-kubeadm", "v1.9.0"),
                ],
                1,
            ),
        ];
        for (target, problems) in cases {
            let found = older_in_target(&source, target);
            assert_eq!(found.len(), problems, "{target:?}: {found:?}");
        }
        let found = older_in_target(&source, &[installed("cluster-api", "v1.14.1")]);
        assert!(
            found[0].contains("source: v1.14.2, target: v1.14.1"),
            "{found:?}"
        );
    }

    #[test]
    fn a_service_copy_leaves_its_cluster_ips_behind() {
        let service = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "capi-webhook-service", "namespace": "capi-system", "uid": "u1"},
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 443}]},
        });
        let copy = component_copy(&service);
        assert_eq!(copy["spec"], serde_json::json!({"ports": [{"port": 443}]}));
        assert!(copy["metadata"].get("uid").is_none());
    }
}
