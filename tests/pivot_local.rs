//! The pivot for real (issue 5): `cairn apply` bootstraps an example cluster, installs the agent,
//! moves the CAPI objects into the workload cluster and waits for the agent to report Ready; the
//! agent then carries a commit out with the management API server stopped; a cluster that left
//! the repository is moved back and deleted with `--prune`, unless it is protected; a cluster
//! with no profiles, its apply killed in the middle of the pivot, is finished by the next apply
//! and converged by its agent. Real API servers, the provider simulator, a real git repository
//! and the built `cairn` binary.

mod common;
mod env;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::apply::health::{Health, health};
use cairn::lifecycle::record::read_status;
use cairn::lifecycle::workload::reach_workload;
use cairn::model::types::StageName;
use cairn::pivot::providers::PROVIDER_LABEL;
use cairn::render::render_repo;
use serde_json::{Value, json};

const CLUSTER: &str = "staging-aws-1";
/// Every provider the local management cluster runs, sorted.
const PROVIDERS: [&str; 6] = [
    "bootstrap-kubeadm",
    "cluster-api",
    "control-plane-kubeadm",
    "infrastructure-aws",
    "infrastructure-docker",
    "infrastructure-vsphere",
];
const CAPI: &str = "cluster.x-k8s.io/v1beta2";

/// The CAPI kinds of an AWS cluster.
const CAPI_KINDS: [(&str, &str); 10] = [
    (CAPI, "Cluster"),
    (CAPI, "MachineDeployment"),
    (CAPI, "MachineSet"),
    (CAPI, "Machine"),
    (
        "controlplane.cluster.x-k8s.io/v1beta2",
        "KubeadmControlPlane",
    ),
    ("bootstrap.cluster.x-k8s.io/v1beta2", "KubeadmConfig"),
    (
        "bootstrap.cluster.x-k8s.io/v1beta2",
        "KubeadmConfigTemplate",
    ),
    ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSCluster"),
    ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSMachine"),
    (
        "infrastructure.cluster.x-k8s.io/v1beta2",
        "AWSMachineTemplate",
    ),
];

fn cairn(args: &[&str], kubeconfig: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("CAIRN_LOG", "warn,cairn=info")
        .output()
        .expect("cairn runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn capi_objects(api: &impl ClusterApi) -> Vec<Value> {
    let mut all = Vec::new();
    for (api_version, kind) in CAPI_KINDS {
        if let Ok(items) = api.list(api_version, kind, Some(CLUSTER), None).await {
            all.extend(items);
        }
    }
    all
}

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn cluster_stub() -> Value {
    json!({"apiVersion": CAPI, "kind": "Cluster", "metadata": {"name": CLUSTER, "namespace": CLUSTER}})
}

async fn get(
    api: &impl ClusterApi,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let stub = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}});
    api.get(&stub).await.unwrap()
}

/// Polls `check` every half second until it returns `Ok`, or panics with its last complaint.
async fn eventually<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if start.elapsed() > timeout => {
                panic!("{what}: still not true after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Every ownerReference of every object points at an object that exists, by uid.
/// A base64 Secret value as text.
fn decode(value: &Value) -> String {
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        value.as_str().unwrap(),
    )
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn dangling_owners(objects: &[Value]) -> Vec<String> {
    let uids: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["uid"].as_str())
        .collect();
    let mut dangling = Vec::new();
    for obj in objects {
        for owner in obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !uids.contains(owner["uid"].as_str().unwrap_or_default()) {
                dangling.push(format!(
                    "{} -> {}",
                    names(std::slice::from_ref(obj))[0],
                    owner["name"]
                ));
            }
        }
    }
    dangling
}

async fn secrets(api: &impl ClusterApi) -> Vec<Value> {
    api.list("v1", "Secret", Some(CLUSTER), None)
        .await
        .unwrap_or_default()
}

async fn machine_deployment_ready(workload: &KubeClusterApi, replicas: i64) -> Result<(), String> {
    let md = get(
        workload,
        CAPI,
        "MachineDeployment",
        CLUSTER,
        &format!("{CLUSTER}-md-0"),
    )
    .await
    .ok_or("no MachineDeployment md-0")?;
    if md["spec"]["replicas"] != replicas {
        return Err(format!("md-0 spec.replicas {}", md["spec"]["replicas"]));
    }
    match health(&md) {
        Health::Ready => Ok(()),
        other => Err(format!("md-0: {other:?}")),
    }
}

async fn node_count(workload: &KubeClusterApi) -> usize {
    workload
        .list("v1", "Node", None, None)
        .await
        .map(|n| n.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pivoted_cluster_reaches_ready_survives_its_management_cluster_and_leaves_with_prune() {
    let root = tempfile::tempdir().unwrap();
    let mut mgmt = env::Management::start(root.path(), Duration::from_millis(100)).await;
    let kubeconfig = mgmt.server.kubeconfig_path.clone();
    let repo = root.path().join("fleet");
    std::fs::create_dir_all(&repo).unwrap();
    let first = common::example_git_repo(&repo, &["prod/vsphere-1.yaml", "dev/docker-1.yaml"]);
    let source_url = format!("file://{}", repo.display());
    let repo_arg = repo.to_str().unwrap();

    // The fleet names a git credentials Secret (fleet-git-credentials); the management cluster
    // holds it, with a canary: it is copied for the agent's pod and never printed.
    let canary = common::canary("git-credentials");
    let credentials = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "fleet-git-credentials", "namespace": "cairn-system"},
        "data": {"username": common::forms("git")[2], "password": common::forms(&canary)[2]}});
    mgmt.api
        .apply(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cairn-system"}}),
        )
        .await
        .unwrap();
    mgmt.api.apply(&credentials).await.unwrap();

    // (1) Through `cairn apply`: bootstrap, agent, move, Ready reported by the agent.
    let (ok, out) = cairn(
        &[
            "apply",
            "--repo",
            repo_arg,
            "--source-url",
            &source_url,
            "--timeout",
            "180s",
        ],
        &kubeconfig,
    );
    assert!(ok, "cairn apply failed:\n{out}");
    assert!(out.contains("pivot: finish done"), "{out}");
    // The bootstrap layers went in once the control plane answered, before the agent and the
    // move (which need a Ready node).
    let at = |step: &str| {
        out.find(step)
            .unwrap_or_else(|| panic!("no {step:?} in:\n{out}"))
    };
    assert!(
        at("control plane initialized") < at("bootstrap layers applied"),
        "{out}"
    );
    assert!(
        at("bootstrap layers applied") < at("pivot stage applied"),
        "{out}"
    );
    let agent_log =
        std::fs::read_to_string(root.path().join("clusters").join(CLUSTER).join("agent.log"))
            .unwrap_or_default();
    assert!(!agent_log.is_empty(), "the agent logged nothing");
    for form in common::forms(&canary) {
        assert!(
            !out.contains(&form) && !agent_log.contains(&form),
            "the canary leaked"
        );
    }

    let left = capi_objects(mgmt.api.as_ref()).await;
    assert!(
        left.is_empty(),
        "CAPI objects left in the management cluster: {:?}",
        names(&left)
    );
    let mgmt_secrets = names(&secrets(mgmt.api.as_ref()).await);
    assert!(
        !mgmt_secrets
            .iter()
            .any(|s| s.contains("-kubeconfig") || s.ends_with("-ca")),
        "cluster Secrets left behind: {mgmt_secrets:?}"
    );
    let workload = reach_workload(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .expect("the kept kubeconfig reaches the workload cluster");

    let cluster = workload
        .get(&cluster_stub())
        .await
        .unwrap()
        .expect("the Cluster moved");
    assert_ne!(cluster["spec"]["paused"], true, "the Cluster is unpaused");
    assert!(
        cluster["metadata"]["annotations"]["cairn.dev/pivot"].is_null(),
        "the journal is closed"
    );
    assert_eq!(
        cluster["metadata"]["annotations"]["cairn.dev/phase"],
        "Ready"
    );
    // The CAPI controllers moved in before the objects did: every provider the management
    // cluster runs has its Deployment Available in the workload cluster, its inventory and
    // its cloud credentials, as clusterctl init would have left them.
    let deployments = workload
        .list("apps/v1", "Deployment", None, Some(PROVIDER_LABEL))
        .await
        .unwrap();
    let mut running: Vec<&str> = deployments
        .iter()
        .filter(|d| health(d) == Health::Ready)
        .filter_map(|d| d["metadata"]["labels"][PROVIDER_LABEL].as_str())
        .collect();
    running.sort();
    assert_eq!(running, PROVIDERS, "{deployments:#?}");
    let inventory = cairn::pivot::providers::inventory(&workload).await.unwrap();
    let mut listed: Vec<(&str, &str)> = inventory
        .iter()
        .map(|p| (p.label.as_str(), p.version.as_str()))
        .collect();
    listed.sort();
    assert_eq!(listed.len(), PROVIDERS.len(), "{inventory:?}");
    assert!(listed.iter().all(|(_, v)| v.starts_with('v')), "{listed:?}");
    let capa_credentials = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "capa-manager-bootstrap-credentials", "namespace": "capa-system"}});
    let copied = workload
        .get(&capa_credentials)
        .await
        .unwrap()
        .expect("copied");
    let original = mgmt
        .api
        .get(&capa_credentials)
        .await
        .unwrap()
        .expect("installed");
    assert_eq!(copied["data"], original["data"], "CAPA's cloud credentials");
    // cert-manager came first and runs there too, and issued the providers' webhook serving
    // certificates in the workload cluster (they are not copied: cert-manager owns them).
    let cert_manager = workload
        .list(
            "apps/v1",
            "Deployment",
            Some("cert-manager"),
            Some("clusterctl.cluster.x-k8s.io/core=cert-manager"),
        )
        .await
        .unwrap();
    let mut running: Vec<&str> = cert_manager
        .iter()
        .filter(|d| health(d) == Health::Ready)
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    running.sort();
    assert_eq!(
        running,
        [
            "cert-manager",
            "cert-manager-cainjector",
            "cert-manager-webhook"
        ],
        "{cert_manager:#?}"
    );
    let serving_cert = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "capi-webhook-service-cert", "namespace": "capi-system"}});
    let issued_here = workload
        .get(&serving_cert)
        .await
        .unwrap()
        .expect("issued in the workload cluster");
    let issued_there = mgmt.api.get(&serving_cert).await.unwrap().expect("issued");
    assert_ne!(
        issued_here["data"]["tls.crt"], issued_there["data"]["tls.crt"],
        "the workload cluster's cert-manager issued its own serving certificate"
    );
    let kcp = get(
        &workload,
        "controlplane.cluster.x-k8s.io/v1beta2",
        "KubeadmControlPlane",
        CLUSTER,
        &format!("{CLUSTER}-control-plane"),
    )
    .await
    .expect("the control plane moved");
    assert_eq!(
        kcp["spec"]["replicas"], 3,
        "the agent raised the control plane to full size"
    );
    assert_eq!(health(&kcp), Health::Ready, "{kcp:#}");
    machine_deployment_ready(&workload, 3).await.unwrap();
    let moved = capi_objects(&workload).await;
    let machines: Vec<&Value> = moved.iter().filter(|o| o["kind"] == "Machine").collect();
    assert_eq!(machines.len(), 6, "3 control-plane and 3 worker machines");
    assert!(
        machines
            .iter()
            .all(|m| m["status"]["nodeRef"]["name"].is_string()),
        "every Machine has a Node"
    );
    assert_eq!(node_count(&workload).await, 6);
    let mut everything = moved.clone();
    everything.extend(secrets(&workload).await);
    assert_eq!(
        dangling_owners(&everything),
        Vec::<String>::new(),
        "every ownerReference resolves"
    );
    let copied = workload
        .get(&credentials)
        .await
        .unwrap()
        .expect("credentials copied");
    assert_eq!(copied["data"], credentials["data"]);
    // The agent ran as its pod: from its ServiceAccount's token (the simulator's pod), with the
    // Secret's keys as files of its volume.
    let pod = root.path().join("clusters").join(CLUSTER).join("agent-pod");
    assert_eq!(
        std::fs::read_to_string(pod.join("volumes/git-credentials/password")).unwrap(),
        canary
    );
    let pod_kubeconfig = std::fs::read_to_string(pod.join("serviceaccount.kubeconfig")).unwrap();
    assert!(pod_kubeconfig.contains("token:"), "{}", pod.display());
    let workload_secrets = names(&secrets(&workload).await);
    for secret in [
        format!("Secret/{CLUSTER}-kubeconfig"),
        format!("Secret/{CLUSTER}-ca"),
    ] {
        assert!(
            workload_secrets.contains(&secret),
            "{secret} moved: {workload_secrets:?}"
        );
    }
    let rendered = render_repo(
        &cairn::model::RepoSnapshot::from_dir(&repo).unwrap(),
        &[CLUSTER.to_string()],
    );
    let addons = rendered.bundles[0]
        .stage(StageName::Addons)
        .unwrap()
        .objects
        .clone();
    assert!(!addons.is_empty());
    for addon in &addons {
        assert!(
            workload.get(addon).await.unwrap().is_some(),
            "the agent applied {}",
            addon["metadata"]["name"]
        );
    }
    let status = read_status(&workload, CLUSTER)
        .await
        .unwrap()
        .expect("the agent reports");
    assert_eq!(
        (status.phase.as_str(), status.revision.as_str()),
        ("Ready", first.as_str())
    );

    // The kept kubeconfig goes stale (KCP rotates the workload's own); the next apply refreshes
    // it from the workload cluster's `<cluster>-kubeconfig`.
    let kept_stub = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{CLUSTER}-kubeconfig"), "namespace": "cairn-system"}});
    let kept = mgmt
        .api
        .get(&kept_stub)
        .await
        .unwrap()
        .expect("kept kubeconfig");
    let stale = format!("{}\n# a stale copy\n", decode(&kept["data"]["value"]));
    let stale = json!({"data": {"value": common::forms(&stale)[2]}});
    mgmt.api.merge_patch(&kept_stub, &stale).await.unwrap();

    // A second apply changes nothing and still finds the cluster Ready.
    let (ok, out) = cairn(
        &[
            "apply",
            "--repo",
            repo_arg,
            "--source-url",
            &source_url,
            "--timeout",
            "60s",
        ],
        &kubeconfig,
    );
    assert!(ok, "{out}");
    assert!(!out.contains("pivot:"), "no second move: {out}");
    assert!(out.contains("refreshed the kept kubeconfig"), "{out}");
    let own = workload
        .get(&json!({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": format!("{CLUSTER}-kubeconfig"), "namespace": CLUSTER}}))
        .await
        .unwrap()
        .expect("the workload's own kubeconfig");
    let kept = mgmt.api.get(&kept_stub).await.unwrap().unwrap();
    assert_eq!(kept["data"]["value"], own["data"]["value"]);
    // `cairn status` reads the pivoted cluster through the kept kubeconfig, with its agent's record.
    let status = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["status", "--output", "json", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{out}");
    let rows: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(rows[0]["name"], CLUSTER);
    assert_eq!(rows[0]["phase"], "Ready");
    assert_eq!(rows[0]["location"], "workload");
    assert_eq!(rows[0]["machines_ready"], 6);
    // ...and a diff of the pivoted cluster (read where its objects now live) finds nothing.
    let (same, out) = cairn(
        &["diff", "--repo", repo_arg, "--source-url", &source_url],
        &kubeconfig,
    );
    assert!(same, "cairn diff after apply:\n{out}");

    // A pull request scaling md-0, previewed against the live (pivoted) cluster: the change is
    // told apart from what is already live. On a branch, so the agent (on main) does not see it.
    common::git(&repo, &["checkout", "-qb", "scale-md-0"]);
    let file = repo.join("clusters/staging/aws-1.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "replicas: 3\n      machine",
            "replicas: 4\n      machine",
            1,
        ),
    )
    .unwrap();
    common::git(&repo, &["commit", "-qam", "scale md-0 to 4"]);
    common::git(&repo, &["checkout", "-q", "main"]);
    let preview = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "preview",
            "--repo",
            repo_arg,
            "--base",
            "main",
            "--head",
            "scale-md-0",
            "--live",
            "--format",
            "json",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&preview.stdout);
    assert!(
        preview.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&preview.stderr)
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    let live = &report["live"]["clusters"][0];
    assert_eq!(live["cluster"], CLUSTER, "{live:#}");
    assert!(live["unavailable"].is_null(), "{live:#}");
    let changed: Vec<&str> = live["change"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        changed,
        vec![format!("{CLUSTER}-md-0").as_str()],
        "{live:#}"
    );
    assert!(
        report["clusters"][0]["impact"]
            .to_string()
            .contains("3 → 4"),
        "{:#}",
        report["clusters"][0]
    );

    // (2) The management API server goes away; a commit scaling md-0 is carried out anyway.
    mgmt.server.stop_apiserver();
    let file = repo.join("clusters/staging/aws-1.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let scaled = text.replacen(
        "replicas: 3\n      machine",
        "replicas: 5\n      machine",
        1,
    );
    assert_ne!(scaled, text, "the test found md-0's replicas");
    std::fs::write(&file, scaled).unwrap();
    common::git(&repo, &["commit", "-qam", "scale md-0 to 5"]);
    let second = common::git(&repo, &["rev-parse", "HEAD"]);
    eventually(
        "the agent scales md-0 to 5 without the management cluster",
        Duration::from_secs(120),
        || async {
            machine_deployment_ready(&workload, 5).await?;
            let status = read_status(&workload, CLUSTER)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no status")?;
            if status.revision != second || status.phase != "Ready" {
                return Err(format!("agent: {}", status.summary("")));
            }
            Ok(())
        },
    )
    .await;
    assert_eq!(node_count(&workload).await, 8);
    // The source goes away: the agent keeps the last good revision and says the source is stale.
    let moved_away = root.path().join("fleet-moved-away");
    std::fs::rename(&repo, &moved_away).unwrap();
    eventually(
        "the agent reports a stale source",
        Duration::from_secs(60),
        || async {
            let status = read_status(&workload, CLUSTER)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no status")?;
            match (
                status.source_stale,
                status.revision == second,
                status.phase.as_str(),
            ) {
                (true, true, "Ready") => Ok(()),
                _ => Err(status.summary("")),
            }
        },
    )
    .await;
    std::fs::rename(&moved_away, &repo).unwrap();
    mgmt.server.start_apiserver().await.unwrap();

    // (4) The cluster leaves the repository. Protected, it is refused and kept.
    std::fs::remove_file(&file).unwrap();
    common::git(&repo, &["commit", "-qam", "remove staging-aws-1"]);
    let protect = |value: Value| json!({"metadata": {"annotations": {"cairn.dev/protect": value}}});
    workload
        .merge_patch(&cluster_stub(), &protect(json!("true")))
        .await
        .unwrap();
    let (ok, out) = cairn(
        &[
            "apply",
            "--repo",
            repo_arg,
            "--prune",
            "--max-prune",
            "1",
            "--timeout",
            "120s",
        ],
        &kubeconfig,
    );
    assert!(!ok, "a protected cluster must not be deleted:\n{out}");
    assert!(
        out.contains("is protected (annotation cairn.dev/protect"),
        "{out}"
    );
    assert!(
        workload.get(&cluster_stub()).await.unwrap().is_some(),
        "still there"
    );

    // Unprotected: moved back (reverse pivot), then deleted.
    workload
        .merge_patch(&cluster_stub(), &protect(Value::Null))
        .await
        .unwrap();
    let (ok, out) = cairn(
        &[
            "apply",
            "--repo",
            repo_arg,
            "--prune",
            "--max-prune",
            "1",
            "--timeout",
            "180s",
        ],
        &kubeconfig,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("reverse pivot") && out.contains("deleted"),
        "{out}"
    );
    assert!(
        mgmt.api.get(&cluster_stub()).await.unwrap().is_none(),
        "the Cluster is gone"
    );
    let kept = json!({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": format!("{CLUSTER}-kubeconfig"), "namespace": "cairn-system"}});
    assert!(
        mgmt.api.get(&kept).await.unwrap().is_none(),
        "the kept kubeconfig is gone"
    );
    eventually("the namespace goes", Duration::from_secs(60), || async {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER}});
        match mgmt.api.get(&ns).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".into()),
        }
    })
    .await;
    eventually(
        "the workload API server stops",
        Duration::from_secs(60),
        || async {
            match workload.list("v1", "Node", None, None).await {
                Err(_) => Ok(()),
                Ok(nodes) => Err(format!("still answers ({} nodes)", nodes.len())),
            }
        },
    )
    .await;
    mgmt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_in_the_middle_of_the_pivot_is_finished_by_the_next_apply() {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::Management::start(root.path(), Duration::from_millis(100)).await;
    let kubeconfig = mgmt.server.kubeconfig_path.clone();
    let repo = root.path().join("fleet");
    std::fs::create_dir_all(&repo).unwrap();
    common::example_git_repo(&repo, &["prod/vsphere-1.yaml", "dev/docker-1.yaml"]);
    // This cluster has no profiles (`profiles: []`): no add-on kinds the agent's rights could
    // lean on, so its own writes (inventories, its record) must be covered by its own RBAC.
    // Its CNI comes from outside cairn, as from a machine image: put into the workload cluster
    // as soon as that answers.
    let spec = repo.join("clusters/staging/aws-1.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("profiles: [base, observability]"));
    std::fs::write(
        &spec,
        text.replace("profiles: [base, observability]", "profiles: []"),
    )
    .unwrap();
    common::git(&repo, &["commit", "-qam", "staging-aws-1 without profiles"]);
    let cni = tokio::spawn(install_cni_when_up(mgmt.api.clone()));
    let source_url = format!("file://{}", repo.display());
    let args = [
        "apply",
        "--repo",
        repo.to_str().unwrap(),
        "--source-url",
        &source_url,
        "--timeout",
        "180s",
    ];

    // Killed right after the objects exist in both clusters, before the hand-over.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("CAIRN_FAULT_AFTER", "create")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(86),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let half = mgmt
        .api
        .get(&cluster_stub())
        .await
        .unwrap()
        .expect("still in the management cluster");
    assert_eq!(half["spec"]["paused"], true, "killed while paused");

    let (ok, out) = cairn(&args, &kubeconfig);
    assert!(ok, "the rerun finishes the pivot:\n{out}");
    assert!(
        out.contains("resuming") || out.contains("pivot: hand-over done"),
        "{out}"
    );
    assert!(
        capi_objects(mgmt.api.as_ref()).await.is_empty(),
        "nothing left behind"
    );
    let workload = reach_workload(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .unwrap();
    let cluster = workload.get(&cluster_stub()).await.unwrap().unwrap();
    assert_ne!(cluster["spec"]["paused"], true);
    assert_eq!(
        cluster["metadata"]["annotations"]["cairn.dev/phase"],
        "Ready"
    );
    machine_deployment_ready(&workload, 3).await.unwrap();
    assert!(cni.is_finished(), "the CNI came from the test");
    let record = read_status(&workload, CLUSTER)
        .await
        .unwrap()
        .expect("the agent's record");
    assert_eq!(record.phase, "Ready", "{record:?}");
    assert!(record.last_error.is_none(), "{record:?}");
    mgmt.stop().await;
}

/// Applies a CNI DaemonSet into the workload cluster of `CLUSTER` as soon as it answers.
async fn install_cni_when_up(mgmt: std::sync::Arc<KubeClusterApi>) {
    let mut cni: Value = serde_yaml::from_str(common::CNI_DAEMONSET).unwrap();
    cni["metadata"]["namespace"] = "kube-system".into();
    loop {
        if let Ok(Some(workload)) = reach_workload(mgmt.as_ref(), CLUSTER).await
            && workload.apply(&cni).await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
