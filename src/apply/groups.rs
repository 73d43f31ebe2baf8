//! PURE: how a bundle's stages are cut into the groups `apply_stage` applies one after another
//! (a profile layer, the objects the bootstrap stage only creates, a whole stage), and which
//! objects a stage hands over to another.

use serde_json::Value;

use crate::model::types::StageName;
use crate::render::finalize::{
    BOOTSTRAP_LAYER_ANNOTATION, LAYER_LABEL, NO_WAIT_ANNOTATION, impersonated_user,
};
use crate::render::kinds::{ObjectKey, annotation, label};
use crate::render::{Bundle, Stage};

/// A group of a stage's objects applied together: a profile layer, or a whole stage.
pub struct Group {
    pub objects: Vec<Value>,
    /// Wait until every object of the group is healthy before the next group.
    pub wait: bool,
    /// Only create these objects; once they exist another stage owns their content.
    pub create_only: bool,
    /// The user every read and write of the group is made as (a layer's `serviceAccountName`,
    /// as `system:serviceaccount:<namespace>:<name>`); `None`: the applier's own identity.
    pub impersonate: Option<String>,
}

impl Group {
    /// A group that is applied as it is, with no wait.
    fn plain(objects: Vec<Value>) -> Group {
        Group {
            objects,
            wait: false,
            create_only: false,
            impersonate: None,
        }
    }
}

/// The objects of one stage of the bundle (none when it has no such stage).
pub fn stage(bundle: &Bundle, name: StageName) -> &[Value] {
    bundle
        .stage(name)
        .map(|s: &Stage| s.objects.as_slice())
        .unwrap_or(&[])
}

/// A whole stage as one group.
pub fn one_group(objects: &[Value]) -> Vec<Group> {
    vec![Group::plain(objects.to_vec())]
}

/// Add-on objects grouped by layer, in order; a layer waits unless marked `wait: false`.
pub fn addon_groups(objects: &[Value]) -> Vec<Group> {
    let mut groups: Vec<(String, Group)> = Vec::new();
    for obj in objects {
        let layer = label(obj, LAYER_LABEL).unwrap_or_default().to_string();
        let wait = annotation(obj, NO_WAIT_ANNOTATION) != Some("false");
        match groups.last_mut() {
            Some((name, group)) if *name == layer => group.objects.push(obj.clone()),
            _ => groups.push((
                layer,
                Group {
                    wait,
                    impersonate: impersonated_user(obj),
                    ..Group::plain(vec![obj.clone()])
                },
            )),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The groups of the `bootstrap: true` layers (rendered first among the add-ons).
pub fn bootstrap_addon_groups(objects: &[Value]) -> Vec<Group> {
    let bootstrap: Vec<Value> = objects
        .iter()
        .filter(|o| annotation(o, BOOTSTRAP_LAYER_ANNOTATION) == Some("true"))
        .cloned()
        .collect();
    addon_groups(&bootstrap)
}

/// Keys of the bootstrap objects the workload stage also renders (the KubeadmControlPlane and
/// its machine template). The bootstrap stage only creates them: once they exist, the workload
/// stage owns them, or every run would scale the control plane down to one and back up.
pub fn handed_over(bundle: &Bundle) -> Vec<ObjectKey> {
    let workload: Vec<ObjectKey> = stage(bundle, StageName::Workload)
        .iter()
        .map(ObjectKey::of)
        .collect();
    stage(bundle, StageName::Bootstrap)
        .iter()
        .map(ObjectKey::of)
        .filter(|k| workload.contains(k))
        .collect()
}

/// The bootstrap stage as groups: what it alone owns, then what it hands over (create only).
pub fn bootstrap_groups(bundle: &Bundle) -> Vec<Group> {
    let shared = handed_over(bundle);
    let (handed, owned): (Vec<Value>, Vec<Value>) = stage(bundle, StageName::Bootstrap)
        .iter()
        .cloned()
        .partition(|o| shared.contains(&ObjectKey::of(o)));
    vec![
        Group::plain(owned),
        Group {
            create_only: true,
            ..Group::plain(handed)
        },
    ]
}

/// The bundle as it applies inside a pivoted workload cluster: there the pivot stage owns the
/// objects it shares with the bootstrap stage (the cluster's Namespace, which its Role needs),
/// so the bootstrap stage leaves them alone instead of fighting over their labels.
pub fn as_pivoted(bundle: &Bundle) -> Bundle {
    let pivot_keys: Vec<ObjectKey> = stage(bundle, StageName::Pivot)
        .iter()
        .map(ObjectKey::of)
        .collect();
    let mut pivoted = bundle.clone();
    for s in pivoted
        .stages
        .iter_mut()
        .filter(|s| s.name == StageName::Bootstrap)
    {
        s.objects
            .retain(|o| !pivot_keys.contains(&ObjectKey::of(o)));
    }
    pivoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addon(name: &str, layer: &str, wait: Option<&str>) -> Value {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {LAYER_LABEL: layer}, "annotations": {}}});
        if let Some(wait) = wait {
            obj["metadata"]["annotations"][NO_WAIT_ANNOTATION] = json!(wait);
        }
        obj
    }

    #[test]
    fn addons_split_by_layer_in_order_and_wait_unless_told_not_to() {
        let objects = [
            addon("a", "cni", None),
            addon("b", "cni", None),
            addon("c", "dash", Some("false")),
            addon("d", "cni", None),
        ];
        let groups = addon_groups(&objects);
        let shape: Vec<(usize, bool)> = groups.iter().map(|g| (g.objects.len(), g.wait)).collect();
        assert_eq!(shape, vec![(2, true), (1, false), (1, true)]);
        assert!(groups.iter().all(|g| !g.create_only));
    }
}
