//! `--prune` never deletes because the input was missing or wrong: `cairn apply --prune` and
//! `cairn run --prune` against a real API server holding three cairn-managed Clusters, with an
//! empty `--repo`, a wrong one (the repository's `clusters/` folder) and a repository missing
//! two of the three clusters. Every time: a clear refusal, and all three Clusters still there.

mod common;
mod env;

use std::path::Path;
use std::time::{Duration, Instant};

use cairn::apply::api::{ClusterApi, KubeClusterApi};
use serde_json::json;

const CLUSTERS: [&str; 3] = ["dev-docker-1", "staging-aws-1", "prod-vsphere-1"];

/// The example's three Clusters as cairn labels them, in their namespaces.
async fn managed_clusters(api: &KubeClusterApi) {
    for name in CLUSTERS {
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        api.apply(&namespace).await.unwrap();
        let cluster = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": name,
                         "labels": {"cairn.dev/cluster": name}},
            "spec": {"paused": true},
        });
        api.apply(&cluster).await.unwrap();
    }
}

async fn clusters_left(api: &KubeClusterApi) -> Vec<String> {
    let mut left = Vec::new();
    for name in CLUSTERS {
        let stub = cairn::render::capi::cluster_ref(name);
        if api.get(&stub).await.unwrap().is_some() {
            left.push(name.to_string());
        }
    }
    left
}

fn apply_prune(repo: &Path, kubeconfig: &Path) -> common::Run {
    common::cairn([
        "apply".as_ref(),
        "--prune".as_ref(),
        "--timeout".as_ref(),
        "10s".as_ref(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_refuses_an_empty_a_wrong_and_a_half_empty_repository() {
    let dir = tempfile::tempdir().unwrap();
    let server = env::start("prune", dir.path()).await;
    let api = KubeClusterApi::new(server.client().await.unwrap(), false);
    cairn::kube_client::install_crds(api.dynamic(), &env::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    managed_clusters(&api).await;
    assert_eq!(clusters_left(&api).await.len(), 3);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let example = dir.path().join("example");
    std::fs::create_dir(&example).unwrap();
    common::example_git_repo(&example, &[]);
    let half = dir.path().join("half");
    std::fs::create_dir(&half).unwrap();
    common::example_git_repo(&half, &["vsphere-1.yaml", "aws-1.yaml"]);

    for (repo, refusal) in [
        (empty.clone(), "nothing was deleted"),
        (example.join("clusters"), "nothing was deleted"),
        (half.clone(), "refusing to delete 2 of 3 clusters"),
    ] {
        let run = apply_prune(&repo, &server.kubeconfig_path);
        assert_eq!(run.code, 2, "{}: {}", repo.display(), run.stderr);
        // An empty or wrong repository may also be refused before the prune guard, as input
        // that is no fleet repository at all; either way it says so and deletes nothing.
        assert!(
            run.stderr.contains(refusal) || run.stderr.contains("fleet.yaml"),
            "{}: {}",
            repo.display(),
            run.stderr
        );
        assert_eq!(clusters_left(&api).await.len(), 3, "{}", repo.display());
    }
    assert!(
        apply_prune(&half, &server.kubeconfig_path)
            .stderr
            .contains("--max-prune 2"),
        "the refusal says how to go ahead"
    );

    // The controller: the half-empty revision deletes nothing, and /status says why.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, status_port) = (free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["run", "--prune", "--timeout", "10s"])
        .arg("--repo")
        .arg(&half)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig_path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--status-listen")
        .arg(format!("127.0.0.1:{status_port}"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let refused = loop {
        let status = reqwest::get(format!("http://127.0.0.1:{status_port}/status")).await;
        if let Ok(response) = status {
            let text = response.text().await.unwrap_or_default();
            let view: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(why) = view["prune_refused"].as_str() {
                break why.to_string();
            }
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the controller never reported the refused prune");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(refused.contains("refusing to delete 2 of 3"), "{refused}");
    // Give it a few reconcile rounds to prove nothing goes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = clusters_left(&api).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(left.len(), 3, "{left:?}");
}

/// A departed cluster takes its namespace along only when cairn created that namespace: one
/// that was there before (an application's) is kept, with what is in it.
#[tokio::test(flavor = "multi_thread")]
async fn removal_keeps_a_namespace_cairn_did_not_create() {
    use cairn::lifecycle::namespace::{CREATED_ANNOTATION, namespace_ref};
    let dir = tempfile::tempdir().unwrap();
    let server = env::start("namespaces", dir.path()).await;
    let api = KubeClusterApi::new(server.client().await.unwrap(), false);
    cairn::kube_client::install_crds(api.dynamic(), &env::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    for (name, created) in [("team-a", false), ("made-by-cairn", true)] {
        let mut namespace = namespace_ref(name);
        if created {
            namespace["metadata"]["annotations"] = json!({CREATED_ANNOTATION: "true"});
        }
        api.apply(&namespace).await.unwrap();
        let cluster = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": name, "labels": {"cairn.dev/cluster": name}},
            "spec": {"paused": true},
        });
        api.apply(&cluster).await.unwrap();
    }
    let opts = cairn::lifecycle::ApplyOptions::new(true, Duration::from_secs(30), "test");
    for name in ["team-a", "made-by-cairn"] {
        cairn::lifecycle::removal::remove_cluster(&api, name, &opts)
            .await
            .unwrap();
        let cluster = cairn::render::capi::cluster_ref(name);
        assert!(api.get(&cluster).await.unwrap().is_none(), "{name}");
    }
    assert!(api.get(&namespace_ref("team-a")).await.unwrap().is_some());
    let gone = api.get(&namespace_ref("made-by-cairn")).await.unwrap();
    // A namespace being deleted may linger while it is finalized; it is on its way out.
    assert!(
        gone.as_ref()
            .is_none_or(|ns| ns["metadata"]["deletionTimestamp"].is_string()),
        "{gone:?}"
    );
}
