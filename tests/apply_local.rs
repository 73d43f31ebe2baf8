//! `cairn apply` and `cairn diff` for a cluster that stays managed from the management cluster,
//! against real API servers with the CAPI CRDs and the provider simulator.

mod env;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn::apply::api::ClusterApi;
use cairn::diff::plan::{Action, Plan};
use cairn::lifecycle::ApplyOptions;
use cairn::lifecycle::cluster::apply_cluster;
use cairn::lifecycle::diff::diff_cluster;
use cairn::lifecycle::workload::workload_api;
use cairn::model::RepoSnapshot;
use cairn::model::types::StageName;
use cairn::render::{Bundle, render_repo};
use serde_json::{Value, json};

const CLUSTER: &str = "dev-docker-1";

fn opts(prune: bool) -> ApplyOptions {
    ApplyOptions::new(prune, Duration::from_secs(120), "test")
}

fn bundle_of(snapshot: &RepoSnapshot) -> Bundle {
    let rendered = render_repo(snapshot, &[CLUSTER.to_string()]);
    assert!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    rendered.bundles.into_iter().next().unwrap()
}

/// The example repository with `edit` applied to one file.
fn example_with(file: &str, edit: impl Fn(&str) -> String) -> RepoSnapshot {
    let files: Vec<(String, String)> = cairn::example::FILES
        .iter()
        .map(|(p, t)| {
            (
                p.to_string(),
                if *p == file { edit(t) } else { t.to_string() },
            )
        })
        .collect();
    RepoSnapshot::from_files(files)
}

fn writes(notes: &str, plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action.writes())
        .map(|c| format!("{notes}: {} {}", c.action.as_str(), c.key))
        .collect()
}

async fn resource_versions(api: &impl ClusterApi, objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for obj in objects {
        let live = api.get(obj).await.unwrap().expect("exists");
        out.push(
            live["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    out
}

fn kubectl_diff(kubeconfig: &Path, file: &Path) -> (i32, String) {
    let assets = env::assets();
    let out = std::process::Command::new(&assets.kubectl)
        .args(["diff", "--server-side", "--field-manager=cairn", "-f"])
        .arg(file)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_goes_from_nothing_to_ready_stays_converged_and_is_corrected() {
    let root = tempfile::tempdir().unwrap();
    let management = env::Management::start(root.path(), Duration::from_millis(50)).await;
    let mgmt = management.api.clone();
    let mgmt_server = &management.server;

    // 1. From nothing to Ready.
    let bundle = bundle_of(&cairn::example::example_snapshot());
    let report = apply_cluster(&mgmt, &bundle, &opts(false)).await.unwrap();
    // The bootstrap layers (CNI, storage) went in before the machines were rolled out, since
    // real Nodes are not Ready without a CNI; the whole add-on stage after found them applied.
    let order: Vec<StageName> = report.stages.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        order,
        [
            StageName::Bootstrap,
            StageName::Addons,
            StageName::Workload,
            StageName::Addons
        ]
    );
    let (early, whole) = (&report.stages[1].1, &report.stages[3].1);
    assert!(
        early.written() > 0,
        "the CNI and storage layers were written early"
    );
    assert!(
        whole.unchanged() >= early.written(),
        "and found unchanged later"
    );
    let cluster = mgmt
        .get(
            &json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                      "metadata": {"name": CLUSTER, "namespace": CLUSTER}}),
        )
        .await
        .unwrap()
        .unwrap();
    let annotations = &cluster["metadata"]["annotations"];
    assert_eq!(annotations["cairn.dev/phase"], "Ready");
    assert_eq!(annotations["cairn.dev/revision"], "test");
    assert!(
        annotations["cairn.dev/bundle-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 10)
    );

    // 2. Converged: diff is empty, and kubectl agrees on every stage it can see.
    let plan = diff_cluster(&mgmt, &bundle, false).await.unwrap();
    assert!(!plan.has_changes(), "{:#?}", writes("converged", &plan));
    let workload = workload_api(mgmt.as_ref(), CLUSTER).await.unwrap().unwrap();
    let out = root.path().join("rendered");
    for (file, yaml) in cairn::render::output::bundle_files(&bundle) {
        std::fs::create_dir_all(out.join(&file).parent().unwrap()).unwrap();
        std::fs::write(out.join(file), yaml).unwrap();
    }
    let workload_kubeconfig = root.path().join("workload.kubeconfig");
    let secret = mgmt
        .get(&json!({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": format!("{CLUSTER}-kubeconfig"), "namespace": CLUSTER}}))
        .await
        .unwrap()
        .unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["value"].as_str().unwrap())
        .unwrap();
    std::fs::write(&workload_kubeconfig, decoded).unwrap();
    for (kubeconfig, stage) in [
        (&mgmt_server.kubeconfig_path, StageName::Workload),
        (&workload_kubeconfig, StageName::Addons),
    ] {
        let (code, output) = kubectl_diff(kubeconfig, &out.join(CLUSTER).join(stage.file_name()));
        assert_eq!(
            code,
            0,
            "kubectl diff of {} disagrees:\n{output}",
            stage.as_str()
        );
    }

    // 3. A converged apply makes no writes.
    let addons = bundle.stage(StageName::Addons).unwrap().objects.clone();
    let before = resource_versions(&workload, &addons).await;
    let mgmt_writes = mgmt.counters.writes.load(Ordering::Relaxed);
    apply_cluster(&mgmt, &bundle, &opts(false)).await.unwrap();
    assert_eq!(
        mgmt.counters.writes.load(Ordering::Relaxed),
        mgmt_writes,
        "writes to the management cluster"
    );
    assert_eq!(
        resource_versions(&workload, &addons).await,
        before,
        "writes to the workload cluster"
    );

    // 4. Drift made by hand is shown and corrected.
    let config_map = addons
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap()
        .clone();
    let (key, value) = config_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    workload
        .dynamic()
        .merge_patch(
            &config_map,
            &json!({"data": {&key: "by hand"}}),
            "kubectl-edit",
        )
        .await
        .unwrap();
    let plan = diff_cluster(&mgmt, &bundle, false).await.unwrap();
    let drifted = writes("drift", &plan);
    assert_eq!(drifted.len(), 1, "{drifted:?}");
    assert!(drifted[0].contains("update ConfigMap/"), "{drifted:?}");
    let diff_text = plan.changes.iter().find_map(|c| c.diff.clone()).unwrap();
    assert!(
        diff_text.contains(&format!("-  {key}: by hand")),
        "{diff_text}"
    );
    apply_cluster(&mgmt, &bundle, &opts(false)).await.unwrap();
    let live = workload.get(&config_map).await.unwrap().unwrap();
    assert_eq!(live["data"][&key], value, "drift corrected");

    // 5. A layer removed from a profile: diff shows it; apply keeps it; apply --prune deletes it.
    let without_storage = example_with("profiles/base.yaml", |text| {
        let start = text.find("    - name: storage").expect("storage layer");
        let end = text[start + 1..]
            .find("\n    - name:")
            .map_or(text.len(), |i| start + 1 + i);
        format!("{}{}", &text[..start], &text[end..])
    });
    let smaller = bundle_of(&without_storage);
    let storage: Vec<Value> = addons
        .iter()
        .filter(|o| o["metadata"]["labels"]["cairn.dev/layer"] == "storage")
        .cloned()
        .collect();
    assert!(!storage.is_empty());
    let plan = diff_cluster(&mgmt, &smaller, false).await.unwrap();
    let orphans = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Orphan)
        .count();
    assert_eq!(orphans, storage.len());
    let plan = diff_cluster(&mgmt, &smaller, true).await.unwrap();
    assert_eq!(
        plan.changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .count(),
        storage.len()
    );
    apply_cluster(&mgmt, &smaller, &opts(false)).await.unwrap();
    for obj in &storage {
        assert!(
            workload.get(obj).await.unwrap().is_some(),
            "kept without --prune: {obj}"
        );
    }
    apply_cluster(&mgmt, &smaller, &opts(true)).await.unwrap();
    for obj in storage.iter().filter(|o| o["kind"] != "Namespace") {
        assert!(
            workload.get(obj).await.unwrap().is_none(),
            "pruned: {}",
            obj["metadata"]
        );
    }

    management.stop().await;
}
