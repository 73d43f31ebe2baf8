//! The example repository renders to reviewed snapshots, deterministically, and template names
//! follow their specs.

use std::path::Path;

use cairn::model::RepoSnapshot;
use cairn::model::types::StageName;
use cairn::render::output::bundles_stream;
use cairn::render::yaml::objects_yaml;
use cairn::render::{Bundle, render_repo};
use serde_json::Value;

fn example_snapshot() -> RepoSnapshot {
    RepoSnapshot::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo")).unwrap()
}

fn render_ok(snapshot: &RepoSnapshot) -> Vec<Bundle> {
    let rendered = render_repo(snapshot, &[]);
    assert!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    rendered.bundles
}

#[test]
fn example_repo_renders_to_the_reviewed_snapshots() {
    let bundles = render_ok(&example_snapshot());
    assert_eq!(bundles.len(), 3);
    for bundle in &bundles {
        for stage in &bundle.stages {
            let name = format!("{}__{}", bundle.cluster, stage.name.file_name());
            insta::assert_snapshot!(name, objects_yaml(&stage.objects));
        }
    }
}

#[test]
fn rendering_is_byte_for_byte_deterministic() {
    let first = bundles_stream(&render_ok(&example_snapshot()));
    for _ in 0..3 {
        assert_eq!(first, bundles_stream(&render_ok(&example_snapshot())));
    }
}

#[test]
fn every_object_carries_cluster_and_stage_labels_and_keys_are_sorted() {
    for bundle in render_ok(&example_snapshot()) {
        for stage in &bundle.stages {
            for obj in &stage.objects {
                let labels = &obj["metadata"]["labels"];
                assert_eq!(labels["cairn.dev/cluster"], bundle.cluster.as_str());
                assert_eq!(labels["cairn.dev/stage"], stage.name.as_str());
            }
            let text = objects_yaml(&stage.objects);
            let reparsed: Vec<Value> = text
                .split("---\n")
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_yaml::from_str(d).unwrap())
                .collect();
            assert_eq!(reparsed, stage.objects, "YAML round-trips");
        }
    }
}

#[test]
fn pivot_false_has_no_pivot_stage_and_capi_objects_live_in_the_cluster_namespace() {
    let bundles = render_ok(&example_snapshot());
    let dev = bundles
        .iter()
        .find(|b| b.cluster == "dev-docker-1")
        .unwrap();
    assert!(dev.stage(StageName::Pivot).is_none());
    let prod = bundles
        .iter()
        .find(|b| b.cluster == "prod-vsphere-1")
        .unwrap();
    assert!(prod.stage(StageName::Pivot).is_some());
    for stage in [StageName::Bootstrap, StageName::Workload] {
        for obj in &prod.stage(stage).unwrap().objects {
            if obj["kind"] != "Namespace" {
                assert_eq!(obj["metadata"]["namespace"], "prod-vsphere-1", "{obj}");
            }
        }
    }
    let kcp = |stage| {
        prod.stage(stage)
            .unwrap()
            .objects
            .iter()
            .find(|o| o["kind"] == "KubeadmControlPlane")
            .unwrap()
            .clone()
    };
    assert_eq!(kcp(StageName::Bootstrap)["spec"]["replicas"], 1);
    assert_eq!(kcp(StageName::Workload)["spec"]["replicas"], 3);
}

/// The example repo with one cluster file edited.
fn edited(cluster_file: &str, from: &str, to: &str) -> RepoSnapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
    let mut files = Vec::new();
    for entry in walk(&root) {
        let rel = entry
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let mut text = std::fs::read_to_string(&entry).unwrap();
        if rel == cluster_file {
            assert!(text.contains(from), "{from} not in {rel}");
            text = text.replacen(from, to, 1);
        }
        files.push((rel, text));
    }
    RepoSnapshot::from_files(files)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Names of hashed templates and the references to them, by stage.
fn template_names(bundle: &Bundle) -> Vec<(StageName, String, String)> {
    let mut names = Vec::new();
    for stage in &bundle.stages {
        for obj in &stage.objects {
            let kind = obj["kind"].as_str().unwrap().to_string();
            if kind.ends_with("MachineTemplate") || kind == "KubeadmConfigTemplate" {
                names.push((
                    stage.name,
                    kind,
                    obj["metadata"]["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    names.sort();
    names
}

fn cluster(bundles: &[Bundle], name: &str) -> Bundle {
    bundles.iter().find(|b| b.cluster == name).unwrap().clone()
}

fn md_infra_ref(bundle: &Bundle, md: &str) -> String {
    let obj = bundle
        .stage(StageName::Workload)
        .unwrap()
        .objects
        .iter()
        .find(|o| o["kind"] == "MachineDeployment" && o["metadata"]["name"] == md)
        .unwrap();
    obj["spec"]["template"]["spec"]["infrastructureRef"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_machine_change_renames_exactly_that_pools_template_and_moves_its_reference() {
    let before = cluster(&render_ok(&example_snapshot()), "prod-vsphere-1");
    let after_repo = edited(
        "clusters/prod/vsphere-1.yaml",
        "memoryMiB: 65536",
        "memoryMiB: 98304",
    );
    let after = cluster(&render_ok(&after_repo), "prod-vsphere-1");
    let old = template_names(&before);
    let new = template_names(&after);
    let changed: Vec<_> = new.iter().filter(|n| !old.contains(n)).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].1, "VSphereMachineTemplate");
    assert!(changed[0].2.starts_with("prod-vsphere-1-md-1-"));
    assert_eq!(md_infra_ref(&after, "prod-vsphere-1-md-1"), changed[0].2);
    assert_eq!(
        md_infra_ref(&after, "prod-vsphere-1-md-0"),
        md_infra_ref(&before, "prod-vsphere-1-md-0")
    );
}

#[test]
fn a_replicas_change_renames_nothing() {
    let before = cluster(&render_ok(&example_snapshot()), "prod-vsphere-1");
    let after_repo = edited("clusters/prod/vsphere-1.yaml", "replicas: 4", "replicas: 6");
    let after = cluster(&render_ok(&after_repo), "prod-vsphere-1");
    assert_eq!(template_names(&before), template_names(&after));
    assert_ne!(before, after, "the replicas did change");
}

#[test]
fn a_version_change_renames_no_template_but_changes_the_control_plane() {
    let before = cluster(&render_ok(&example_snapshot()), "staging-aws-1");
    let after_repo = edited("clusters/staging/aws-1.yaml", "v1.34.2", "v1.34.3");
    let after = cluster(&render_ok(&after_repo), "staging-aws-1");
    // The version lives on the KubeadmControlPlane and MachineDeployment, not the templates:
    // CAPI rolls the machines because those objects change.
    assert_eq!(template_names(&before), template_names(&after));
    let kcp = after
        .stage(StageName::Workload)
        .unwrap()
        .objects
        .iter()
        .find(|o| o["kind"] == "KubeadmControlPlane")
        .unwrap()
        .clone();
    assert_eq!(kcp["spec"]["version"], "v1.34.3");
}

#[test]
fn the_agents_pod_runs_on_the_first_control_plane_node_before_it_is_ready() {
    // At pivot time the only Node may be the first control-plane node: tainted by kubeadm, by
    // the API server until it is Ready (no CNI yet), and by the kubelet until a cloud
    // controller manager initializes it.
    let first_node = serde_json::json!({"spec": {"taints": [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"},
    ]}});
    for bundle in render_ok(&example_snapshot()).iter().filter(|b| b.pivot) {
        let deployment = bundle
            .stage(StageName::Pivot)
            .unwrap()
            .objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            cairn::local::simulator::schedulable(pod, std::slice::from_ref(&first_node)),
            Ok(()),
            "{}",
            bundle.cluster
        );
        assert_eq!(pod["priorityClassName"], "system-cluster-critical");
        let args = pod["containers"][0]["args"].as_array().unwrap();
        let state_dir = args
            .iter()
            .position(|a| a == "--state-dir")
            .expect("--state-dir");
        let mounted = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == args[state_dir + 1] && m["name"] == "cache");
        assert!(mounted, "the state dir is the cache emptyDir: {args:?}");
    }
}
