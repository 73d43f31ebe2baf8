//! A pivot killed after any of its steps is finished by the next run (issue 5, must-show 3):
//! for every step `cairn pivot --list-steps` names, in both directions, the binary exits right
//! after it (`CAIRN_FAULT_AFTER`), a rerun completes the move, and then every object is in the
//! destination exactly once, none is left in the source, every ownerReference resolves and the
//! Cluster is unpaused with its journal closed. Real API servers and the provider simulator.

mod env;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::diff::key::ObjectKey;
use cairn::lifecycle::ApplyOptions;
use cairn::lifecycle::cluster::apply_cluster;
use cairn::lifecycle::workload::reach_workload;
use cairn::pivot::checks::unprovisioned;
use cairn::pivot::discover::{discover, move_types, provider_crds};
use cairn::pivot::steps::{JOURNAL_ANNOTATION, Step};

/// The CLI's testing aid: exit right after this pivot step, with this code.
const FAULT_ENV: &str = "CAIRN_FAULT_AFTER";
const FAULT_EXIT_CODE: i32 = 86;
use cairn::render::render_repo;
use serde_json::Value;

const CLUSTER: &str = "dev-docker-1";
const CANARY: &str = "canary-7d1f0c-never-print-me";

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Runs `cairn pivot CLUSTER`, optionally reversed and with a fault; returns the exit code and output.
fn pivot(kubeconfig: &Path, reverse: bool, fault: Option<Step>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(["pivot", CLUSTER, "--timeout", "60s", "--kubeconfig"])
        .arg(kubeconfig);
    if reverse {
        command.arg("--reverse");
    }
    match fault {
        Some(step) => command.env(FAULT_ENV, step.name()),
        None => command.env_remove(FAULT_ENV),
    };
    let out = command.output().expect("cairn runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Every object of the kinds a move considers, in the cluster's namespace.
async fn movable_objects(api: &KubeClusterApi) -> Vec<Value> {
    let crds = provider_crds(api).await.unwrap();
    let mut all = Vec::new();
    for t in move_types(&crds) {
        all.extend(
            api.list(&t.api_version, &t.kind, Some(CLUSTER), None)
                .await
                .unwrap(),
        );
    }
    all
}

/// Waits until the simulator has rebuilt the statuses a move's pre-checks read (a move does
/// not copy status).
async fn wait_provisioned(api: &KubeClusterApi) {
    let start = Instant::now();
    loop {
        let problems = match discover(api, CLUSTER).await.unwrap() {
            Some(d) => unprovisioned(&d.cluster, &d.machines()),
            None => vec!["no Cluster".to_string()],
        };
        if problems.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not provisioned: {problems:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The destination holds exactly `expected`, the source none of it; owners resolve; the
/// Cluster is unpaused and its journal closed.
async fn assert_converged(
    to: &KubeClusterApi,
    from: &KubeClusterApi,
    expected: &BTreeSet<ObjectKey>,
    what: &str,
) {
    let moved: BTreeSet<ObjectKey> = discover(to, CLUSTER)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: no Cluster in the destination"))
        .objects
        .into_keys()
        .collect();
    assert_eq!(
        &moved, expected,
        "{what}: the destination holds exactly the moved objects"
    );
    let left: Vec<String> = movable_objects(from)
        .await
        .iter()
        .map(ObjectKey::of)
        .filter(|k| expected.contains(k))
        .map(|k| k.to_string())
        .collect();
    assert!(
        left.is_empty(),
        "{what}: left in the source (duplicated): {left:?}"
    );

    let objects = movable_objects(to).await;
    let uids: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["uid"].as_str())
        .collect();
    for obj in objects
        .iter()
        .filter(|o| expected.contains(&ObjectKey::of(o)))
    {
        // The source's field owners came along: the mover owns nothing.
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            !managers.contains(&cairn::apply::api::MOVE_MANAGER),
            "{what}: {} is owned by the mover: {managers:?}",
            ObjectKey::of(obj)
        );
    }
    for obj in &objects {
        for owner in obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                uids.contains(owner["uid"].as_str().unwrap_or_default()),
                "{what}: {} has a dangling owner {}",
                ObjectKey::of(obj),
                owner["name"]
            );
        }
    }
    let cluster = objects
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("the Cluster");
    assert_ne!(
        cluster["spec"]["paused"], true,
        "{what}: the Cluster is left paused"
    );
    assert!(
        cluster["metadata"]["annotations"][JOURNAL_ANNOTATION].is_null(),
        "{what}: the journal is still open: {}",
        cluster["metadata"]["annotations"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pivot_step_can_crash_and_the_rerun_converges_both_ways() {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::Management::start(root.path(), Duration::from_millis(50)).await;
    let kubeconfig = mgmt.server.kubeconfig_path.clone();
    let rendered = render_repo(&cairn::example::example_snapshot(), &[CLUSTER.to_string()]);
    let opts = ApplyOptions::new(false, Duration::from_secs(120), "test");
    apply_cluster(&mgmt.api, &rendered.bundles[0], &opts)
        .await
        .unwrap();
    let workload = reach_workload(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .unwrap();
    // A Secret that moves by its label alone, holding a canary no output may show.
    let canary_secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cloud-credentials", "namespace": CLUSTER,
                     "labels": {"clusterctl.cluster.x-k8s.io/move": ""}},
        "stringData": {"password": CANARY}});
    mgmt.api.apply(&canary_secret).await.unwrap();
    let expected: BTreeSet<ObjectKey> = discover(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .unwrap()
        .objects
        .into_keys()
        .collect();
    assert!(expected.len() >= 20, "a real graph: {expected:?}");
    assert!(
        expected.contains(&ObjectKey::of(&canary_secret)),
        "the move label moves it"
    );
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "pivot",
                CLUSTER,
                "--dry-run",
                "--output",
                format,
                "--kubeconfig",
            ])
            .arg(&kubeconfig)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && text.contains("Secret/dev-docker-1/cloud-credentials"),
            "{text}"
        );
        outputs.push(text);
    }

    let (code, listed) = {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["pivot", "--list-steps"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert_eq!(code, Some(0));
    let steps: Vec<Step> = listed
        .lines()
        .map(|l| Step::parse(l).expect("a step name"))
        .collect();
    assert_eq!(
        steps,
        Step::ALL.to_vec(),
        "--list-steps names every step, in order"
    );

    for step in steps {
        for reverse in [false, true] {
            let (from, to) = if reverse {
                (&workload, mgmt.api.as_ref())
            } else {
                (mgmt.api.as_ref(), &workload)
            };
            let what = format!(
                "{} move, crash after {}",
                if reverse { "reverse" } else { "forward" },
                step.name()
            );
            wait_provisioned(from).await;
            let (code, out) = pivot(&kubeconfig, reverse, Some(step));
            assert_eq!(
                code,
                Some(FAULT_EXIT_CODE),
                "{what}: the fault fires\n{out}"
            );
            assert!(
                out.contains(&format!("pivot: {} done", step.name())),
                "{what}\n{out}"
            );
            outputs.push(out);
            let (code, out) = pivot(&kubeconfig, reverse, None);
            assert_eq!(code, Some(0), "{what}: the rerun completes\n{out}");
            outputs.push(out);
            assert_converged(to, from, &expected, &what).await;
        }
    }
    // The moves never took over the Namespace the bootstrap stage labelled.
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER}});
    let namespace = mgmt.api.get(&namespace).await.unwrap().unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["cairn.dev/stage"], "bootstrap",
        "{namespace}"
    );
    let moved = mgmt
        .api
        .get(&canary_secret)
        .await
        .unwrap()
        .expect("the Secret is back");
    assert_eq!(
        moved["data"]["password"],
        base64(CANARY),
        "its value arrived intact"
    );
    for out in &outputs {
        assert!(
            !out.contains(CANARY) && !out.contains(&base64(CANARY)),
            "a Secret value leaked:\n{out}"
        );
    }

    // A management cluster that lost the cluster's namespace (rebuilt, or deleted by hand) gets
    // it back from the reverse pivot, labelled and recorded as cairn's, as the bootstrap stage
    // would have left it.
    wait_provisioned(mgmt.api.as_ref()).await;
    let (code, out) = pivot(&kubeconfig, false, None);
    assert_eq!(code, Some(0), "{out}");
    mgmt.api.delete(&namespace).await.unwrap();
    let gone = Instant::now();
    while mgmt.api.get(&namespace).await.unwrap().is_some() {
        assert!(
            gone.elapsed() < Duration::from_secs(60),
            "the namespace is not going"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_provisioned(&workload).await;
    let (code, out) = pivot(&kubeconfig, true, None);
    assert_eq!(code, Some(0), "{out}");
    assert_converged(
        mgmt.api.as_ref(),
        &workload,
        &expected,
        "reverse into a lost namespace",
    )
    .await;
    let namespace = mgmt.api.get(&namespace).await.unwrap().expect("recreated");
    assert_eq!(
        namespace["metadata"]["labels"]["cairn.dev/cluster"], CLUSTER,
        "{namespace}"
    );
    assert!(
        cairn::lifecycle::namespace::created_by_cairn(&namespace),
        "{namespace}"
    );
    mgmt.stop().await;
}
