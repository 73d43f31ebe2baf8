//! PURE: the pre-checks of a move (clusterctl's checkProvisioningCompleted and the "nothing is
//! paused" rule), as functions from live objects to the problems found.

use serde_json::Value;

use crate::apply::health::control_plane_initialized;
use crate::render::kinds::{annotation, object_ref, str_at};

pub const BLOCK_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/block-move";
pub const DELETE_FOR_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";

fn flag(obj: &Value, pointer: &str) -> bool {
    obj.pointer(pointer).and_then(Value::as_bool) == Some(true)
}

/// Why the source is not ready to move: the Cluster's infrastructure and control plane, and a
/// Node for every Machine. Empty when it is.
pub fn unprovisioned(cluster: &Value, machines: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let name = object_ref(cluster);
    if !flag(cluster, "/status/initialization/infrastructureProvisioned") {
        problems.push(format!(
            "{name}: infrastructure not provisioned (status.initialization.infrastructureProvisioned)"
        ));
    }
    if !control_plane_initialized(cluster) {
        problems.push(format!(
            "{name}: control plane not initialized (status.initialization.controlPlaneInitialized)"
        ));
    }
    for machine in machines {
        let node = machine
            .pointer("/status/nodeRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if node.is_empty() {
            problems.push(format!(
                "{}: no Node yet (status.nodeRef)",
                object_ref(machine)
            ));
        }
    }
    problems
}

/// The kinds (`apiVersion Kind`) that no established CRD among `crds` serves. Core kinds are
/// always served. Read from the CRDs rather than by listing each kind: on a fresh API server
/// the first list of a new kind is throttled while its watch cache starts.
pub fn unserved<'a>(
    kinds: impl IntoIterator<Item = (&'a str, &'a str)>,
    crds: &[Value],
) -> Vec<String> {
    kinds
        .into_iter()
        .filter(|(api_version, _)| api_version.contains('/'))
        .filter(|(api_version, kind)| {
            let (group, version) = api_version.split_once('/').unwrap_or_default();
            !crds.iter().any(|crd| {
                str_at(crd, "/spec/group") == Some(group)
                    && str_at(crd, "/spec/names/kind") == Some(*kind)
                    && crate::kube_client::is_established(crd)
                    && crd
                        .pointer("/spec/versions")
                        .and_then(Value::as_array)
                        .is_some_and(|vs| {
                            vs.iter()
                                .any(|v| v["name"] == version && v["served"] == true)
                        })
            })
        })
        .map(|(api_version, kind)| format!("{api_version} {kind}"))
        .collect()
}

pub fn is_paused(cluster: &Value) -> bool {
    flag(cluster, "/spec/paused")
}

/// The objects that ask the move to wait.
pub fn blocking(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| annotation(o, BLOCK_MOVE_ANNOTATION).is_some())
        .map(object_ref)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(infra: bool, cp: bool) -> Value {
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
               "metadata": {"name": "c", "namespace": "c"},
               "status": {"initialization": {"infrastructureProvisioned": infra, "controlPlaneInitialized": cp}}})
    }

    fn machine(name: &str, node: Option<&str>) -> Value {
        let mut m = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                           "metadata": {"name": name, "namespace": "c"}});
        if let Some(node) = node {
            m["status"] = json!({"nodeRef": {"name": node}});
        }
        m
    }

    #[test]
    fn a_provisioned_cluster_has_no_problems() {
        assert!(unprovisioned(&cluster(true, true), &[machine("m0", Some("n0"))]).is_empty());
    }

    #[test]
    fn every_missing_signal_is_named() {
        let problems = unprovisioned(
            &cluster(false, false),
            &[machine("m0", Some("n0")), machine("m1", None)],
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("infrastructureProvisioned"));
        assert!(problems[1].contains("controlPlaneInitialized"));
        assert!(problems[2].starts_with("Machine/c/m1: no Node"));
    }

    #[test]
    fn kinds_are_served_by_established_crds_at_their_version() {
        let crd = |established: &str| {
            json!({"spec": {"group": "cluster.x-k8s.io", "names": {"kind": "Cluster"},
                            "versions": [{"name": "v1beta2", "served": true}]},
                   "status": {"conditions": [{"type": "Established", "status": established}]}})
        };
        let kinds = [("cluster.x-k8s.io/v1beta2", "Cluster"), ("v1", "Secret")];
        assert!(unserved(kinds, &[crd("True")]).is_empty());
        assert_eq!(
            unserved(kinds, &[crd("False")]),
            vec!["cluster.x-k8s.io/v1beta2 Cluster"]
        );
        assert_eq!(
            unserved([("cluster.x-k8s.io/v1beta1", "Cluster")], &[crd("True")]),
            vec!["cluster.x-k8s.io/v1beta1 Cluster"]
        );
    }

    #[test]
    fn block_move_and_paused_are_read_from_the_objects() {
        let mut blocked = machine("m0", None);
        blocked["metadata"]["annotations"] = json!({BLOCK_MOVE_ANNOTATION: ""});
        assert_eq!(
            blocking(&[machine("m1", None), blocked]),
            vec!["Machine/c/m0"]
        );
        let mut c = cluster(true, true);
        assert!(!is_paused(&c));
        c["spec"] = json!({"paused": true});
        assert!(is_paused(&c));
    }
}
