//! PURE: the object graph of a move, with clusterctl's semantics (objectgraph.go): nodes by
//! uid, ownerReferences as edges, owners outside the discovered set as virtual nodes that never
//! move, the `<cluster>-{kubeconfig,ca,etcd,sa,proxy}` Secrets soft-owned by their Cluster, and
//! each node's tenant: the Cluster it descends from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::render::kinds::ObjectKey;

/// Secret name suffixes CAPI gives a cluster's own Secrets (soft-owned by the Cluster).
const CLUSTER_SECRET_SUFFIXES: [&str; 5] = ["kubeconfig", "ca", "etcd", "sa", "proxy"];
/// Label that makes an object move even without a tenant.
pub const MOVE_LABEL: &str = "clusterctl.cluster.x-k8s.io/move";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub uid: String,
    pub key: ObjectKey,
    /// Owners by uid, hard (ownerReferences) then soft.
    pub owners: BTreeSet<String>,
    /// Known only as an owner: not discovered, never moved.
    pub is_virtual: bool,
    /// The uids of the Clusters this node descends from.
    pub tenants: BTreeSet<String>,
    /// Labelled to move on its own.
    pub force_move: bool,
}

impl Node {
    /// Whether the move takes this node along.
    pub fn moves(&self) -> bool {
        !self.is_virtual && (!self.tenants.is_empty() || self.force_move)
    }
}

/// Nodes by uid.
#[derive(Clone, Debug, Default)]
pub struct ObjectGraph {
    pub nodes: BTreeMap<String, Node>,
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl ObjectGraph {
    /// Builds the graph of the discovered objects (each with `metadata.uid`).
    pub fn build(objects: &[Value]) -> ObjectGraph {
        let mut graph = ObjectGraph::default();
        for obj in objects {
            let uid = text(obj, "/metadata/uid").to_string();
            let owners = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| refs.iter().map(|r| text(r, "/uid").to_string()).collect())
                .unwrap_or_default();
            let force_move = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .is_some_and(|l| l.contains_key(MOVE_LABEL));
            graph.nodes.insert(
                uid.clone(),
                Node {
                    uid,
                    key: ObjectKey::of(obj),
                    owners,
                    is_virtual: false,
                    tenants: BTreeSet::new(),
                    force_move,
                },
            );
        }
        graph.add_virtual_owners();
        graph.add_soft_owners();
        graph.assign_tenants();
        graph
    }

    fn add_virtual_owners(&mut self) {
        let missing: BTreeSet<String> = self
            .nodes
            .values()
            .flat_map(|n| n.owners.iter())
            .filter(|uid| !self.nodes.contains_key(*uid))
            .cloned()
            .collect();
        for uid in missing {
            self.nodes.insert(
                uid.clone(),
                Node {
                    uid,
                    key: ObjectKey {
                        group: String::new(),
                        kind: "(unknown owner)".into(),
                        namespace: String::new(),
                        name: String::new(),
                    },
                    owners: BTreeSet::new(),
                    is_virtual: true,
                    tenants: BTreeSet::new(),
                    force_move: false,
                },
            );
        }
    }

    /// A Secret without owners named `<cluster>-<suffix>` is soft-owned by that Cluster (the
    /// name is split at the last hyphen, as clusterctl does).
    fn add_soft_owners(&mut self) {
        let clusters: BTreeMap<(String, String), String> = self
            .nodes
            .values()
            .filter(|n| n.key.kind == "Cluster" && n.key.group == "cluster.x-k8s.io")
            .map(|n| ((n.key.namespace.clone(), n.key.name.clone()), n.uid.clone()))
            .collect();
        for node in self.nodes.values_mut() {
            if node.key.kind != "Secret" || !node.key.group.is_empty() || !node.owners.is_empty() {
                continue;
            }
            let Some((cluster, suffix)) = node.key.name.rsplit_once('-') else {
                continue;
            };
            if !CLUSTER_SECRET_SUFFIXES.contains(&suffix) {
                continue;
            }
            if let Some(uid) = clusters.get(&(node.key.namespace.clone(), cluster.to_string())) {
                node.owners.insert(uid.clone());
            }
        }
    }

    /// Each node's tenants: the Clusters reached by walking owners upwards.
    fn assign_tenants(&mut self) {
        let uids: Vec<String> = self.nodes.keys().cloned().collect();
        for uid in uids {
            let tenants = self.clusters_above(&uid);
            if let Some(node) = self.nodes.get_mut(&uid) {
                node.tenants = tenants;
            }
        }
    }

    fn clusters_above(&self, start: &str) -> BTreeSet<String> {
        let mut tenants = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_string()];
        while let Some(uid) = stack.pop() {
            if !seen.insert(uid.clone()) {
                continue; // ownerReference cycles end here
            }
            let Some(node) = self.nodes.get(&uid) else {
                continue;
            };
            if node.key.kind == "Cluster" && node.key.group == "cluster.x-k8s.io" {
                tenants.insert(uid.clone());
            }
            stack.extend(node.owners.iter().cloned());
        }
        tenants
    }
}
