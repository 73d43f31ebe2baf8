//! PURE: the order of a move (clusterctl's getMoveSequence): groups of objects that can be
//! created together in the target, each object only after every moving owner. Unlike
//! clusterctl, objects that can never be placed (ownerReference cycles) are reported, not
//! silently dropped.

use std::collections::BTreeSet;

use super::graph::ObjectGraph;
use crate::render::kinds::ObjectKey;

/// Groups in creation order (delete from the source in reverse), and what could not be placed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveSequence {
    pub groups: Vec<Vec<ObjectKey>>,
    /// Objects that move but can never be placed, with the reason.
    pub unplaceable: Vec<(ObjectKey, String)>,
}

pub fn move_sequence(graph: &ObjectGraph) -> MoveSequence {
    let moving: BTreeSet<&str> = graph
        .nodes
        .values()
        .filter(|n| n.moves())
        .map(|n| n.uid.as_str())
        .collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut sequence = MoveSequence::default();
    loop {
        let ready: Vec<&str> = moving
            .iter()
            .copied()
            .filter(|uid| !placed.contains(uid))
            .filter(|uid| {
                graph.nodes[*uid]
                    .owners
                    .iter()
                    .all(|o| !moving.contains(o.as_str()) || placed.contains(o.as_str()))
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        let mut group: Vec<ObjectKey> = ready
            .iter()
            .map(|uid| graph.nodes[*uid].key.clone())
            .collect();
        group.sort();
        sequence.groups.push(group);
        placed.extend(ready);
    }
    for uid in moving.iter().filter(|uid| !placed.contains(*uid)) {
        let node = &graph.nodes[*uid];
        let waiting: Vec<String> = node
            .owners
            .iter()
            .filter(|o| moving.contains(o.as_str()) && !placed.contains(o.as_str()))
            .map(|o| graph.nodes[o].key.to_string())
            .collect();
        sequence.unplaceable.push((
            node.key.clone(),
            format!("ownerReference cycle: waits for {}", waiting.join(", ")),
        ));
    }
    sequence.unplaceable.sort();
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj(api: &str, kind: &str, name: &str, uid: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|o| json!({"apiVersion": "x/v1", "kind": "X", "name": "x", "uid": o}))
            .collect();
        json!({"apiVersion": api, "kind": kind,
               "metadata": {"name": name, "namespace": "ns", "uid": uid, "ownerReferences": refs}})
    }

    fn names(groups: &[Vec<ObjectKey>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|k| format!("{}/{}", k.kind, k.name)).collect())
            .collect()
    }

    const CAPI: &str = "cluster.x-k8s.io/v1beta2";

    fn hierarchy() -> Vec<Value> {
        vec![
            obj(CAPI, "Cluster", "c1", "cl", &[]),
            obj(
                "infrastructure.cluster.x-k8s.io/v1beta2",
                "DockerCluster",
                "c1",
                "dc",
                &["cl"],
            ),
            obj(
                "controlplane.cluster.x-k8s.io/v1beta2",
                "KubeadmControlPlane",
                "c1-cp",
                "kcp",
                &["cl"],
            ),
            obj(CAPI, "Machine", "c1-cp-a", "m1", &["kcp"]),
            obj(
                "infrastructure.cluster.x-k8s.io/v1beta2",
                "DockerMachine",
                "c1-cp-a",
                "dm1",
                &["m1"],
            ),
            obj(
                "bootstrap.cluster.x-k8s.io/v1beta2",
                "KubeadmConfig",
                "c1-cp-a",
                "kc1",
                &["m1"],
            ),
        ]
    }

    #[test]
    fn owners_come_before_what_they_own() {
        let seq = move_sequence(&ObjectGraph::build(&hierarchy()));
        assert_eq!(
            names(&seq.groups),
            vec![
                vec!["Cluster/c1"],
                // Within a group, ordered by API group, kind, namespace and name.
                vec!["KubeadmControlPlane/c1-cp", "DockerCluster/c1"],
                vec!["Machine/c1-cp-a"],
                vec!["KubeadmConfig/c1-cp-a", "DockerMachine/c1-cp-a"],
            ]
        );
        assert!(seq.unplaceable.is_empty());
    }

    #[test]
    fn cluster_secrets_are_soft_owned_and_other_secrets_stay() {
        let mut objects = hierarchy();
        objects.push(obj("v1", "Secret", "c1-kubeconfig", "s1", &[]));
        objects.push(obj("v1", "Secret", "c1-etcd", "s2", &[]));
        objects.push(obj("v1", "Secret", "unrelated-token", "s3", &[]));
        objects.push(obj("v1", "Secret", "other-kubeconfig", "s4", &[]));
        let graph = ObjectGraph::build(&objects);
        assert!(graph.nodes["s1"].owners.contains("cl"));
        let seq = move_sequence(&graph);
        assert!(names(&seq.groups)[1].contains(&"Secret/c1-kubeconfig".to_string()));
        assert!(names(&seq.groups)[1].contains(&"Secret/c1-etcd".to_string()));
        let all: Vec<String> = names(&seq.groups).concat();
        assert!(
            !all.contains(&"Secret/unrelated-token".to_string()),
            "no tenant: does not move"
        );
        assert!(
            !all.contains(&"Secret/other-kubeconfig".to_string()),
            "no such cluster"
        );
    }

    #[test]
    fn a_shared_object_waits_for_all_its_owners() {
        let mut objects = hierarchy();
        objects.push(obj("v1", "Secret", "shared", "sh", &["dm1", "kcp"]));
        let seq = move_sequence(&ObjectGraph::build(&objects));
        let groups = names(&seq.groups);
        assert_eq!(groups.len(), 5);
        assert_eq!(groups[4], vec!["Secret/shared"]);
    }

    #[test]
    fn cycles_are_reported_not_dropped() {
        let mut objects = hierarchy();
        objects.push(obj("v1", "ConfigMap", "a", "a", &["cl", "b"]));
        objects.push(obj("v1", "ConfigMap", "b", "b", &["a"]));
        let seq = move_sequence(&ObjectGraph::build(&objects));
        assert_eq!(seq.unplaceable.len(), 2);
        assert!(
            seq.unplaceable[0].1.contains("cycle"),
            "{:?}",
            seq.unplaceable
        );
        assert_eq!(names(&seq.groups).concat().len(), 6, "the rest still moves");
    }

    #[test]
    fn virtual_owners_and_global_objects_do_not_move() {
        let mut objects = hierarchy();
        // Owned by something outside the discovered set only: no tenant, stays.
        objects.push(obj("v1", "ConfigMap", "foreign", "f", &["not-discovered"]));
        // Owned by a moving object and by an unknown one: moves with its tenant.
        objects.push(obj(
            "v1",
            "ConfigMap",
            "mixed",
            "mx",
            &["kcp", "not-discovered"],
        ));
        let mut global = obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "global",
            "g",
            &[],
        );
        global["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        objects.push(global);
        let graph = ObjectGraph::build(&objects);
        assert!(graph.nodes["not-discovered"].is_virtual);
        let moved: Vec<String> = names(&move_sequence(&graph).groups).concat();
        assert!(!moved.contains(&"ConfigMap/foreign".to_string()));
        assert!(moved.contains(&"ConfigMap/mixed".to_string()));
        assert!(!moved.contains(&"ClusterRole/global".to_string()));
    }

    #[test]
    fn the_move_label_moves_an_object_without_a_tenant() {
        let mut objects = hierarchy();
        let mut labelled = obj("v1", "ConfigMap", "labelled", "l", &[]);
        labelled["metadata"]["labels"] = json!({"clusterctl.cluster.x-k8s.io/move": ""});
        objects.push(labelled);
        let moved: Vec<String> =
            names(&move_sequence(&ObjectGraph::build(&objects)).groups).concat();
        assert!(moved.contains(&"ConfigMap/labelled".to_string()));
    }
}
