//! The provider simulator against real API servers with the real CAPI and provider CRDs: it
//! brings up the example repository's clusters as CAPI's controllers and a cloud would, with a
//! real workload API server per cluster, rolls and scales them, leaves paused ones alone, and
//! tears everything down when a Cluster is deleted.

mod env;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use cairn::kube_client::{DynamicApi, client_from_kubeconfig, install_crds};
use cairn::local::simulator::{Simulator, SimulatorConfig};
use cairn::model::types::StageName;
use serde_json::{Value, json};

/// Generous: the machine is shared with compilers. Tests assert behaviour, never timings.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `$each` then `$check` (an expression giving `Result<T, String>`), pausing `$pause`
/// between rounds, until the check is Ok; panics after TIMEOUT with what was not ready and why.
macro_rules! poll {
    ($what:expr, $pause:expr, $each:block, $check:expr) => {{
        let start = Instant::now();
        loop {
            $each
            let checked: Result<_, String> = async { $check }.await;
            match checked {
                Ok(v) => break v,
                Err(why) if start.elapsed() > TIMEOUT => {
                    panic!("{} not ready after {:?}: {}", $what, TIMEOUT, why)
                }
                Err(_) => tokio::time::sleep($pause).await,
            }
        }
    }};
}

/// Runs simulator passes until `$check` is Ok (see `poll!`).
macro_rules! converge {
    ($sim:expr, $what:expr, $check:expr) => {
        poll!(
            $what,
            Duration::from_millis(100),
            {
                let report = $sim.reconcile_once().await.expect("a simulator pass");
                for e in &report.errors {
                    eprintln!("simulator: {e}");
                }
            },
            $check
        )
    };
}

/// Waits (without driving a simulator) until `$check` is Ok (see `poll!`).
macro_rules! eventually {
    ($what:expr, $check:expr) => {
        poll!($what, Duration::from_millis(200), {}, $check)
    };
}

const CAPI: &str = "cluster.x-k8s.io/v1beta2";
const KCP: &str = "controlplane.cluster.x-k8s.io/v1beta2";
const INFRA: &str = "infrastructure.cluster.x-k8s.io/v1beta2";

fn stage(cluster: &str, name: StageName) -> Vec<Value> {
    let rendered = cairn::render::render_repo(&cairn::example::example_snapshot(), &[]);
    assert!(!rendered.has_errors());
    rendered
        .bundles
        .iter()
        .find(|b| b.cluster == cluster)
        .unwrap_or_else(|| panic!("no bundle for {cluster}"))
        .stage(name)
        .unwrap_or_else(|| panic!("{cluster} has no {name:?} stage"))
        .objects
        .clone()
}

async fn apply_all(api: &DynamicApi, objects: &[Value]) {
    // Namespaces first, as cairn applies.
    let (first, rest): (Vec<&Value>, Vec<&Value>) =
        objects.iter().partition(|o| o["kind"] == "Namespace");
    for obj in first.into_iter().chain(rest) {
        api.apply(obj, false, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A temporary directory and, in it, a management API server with the CAPI and provider CRDs.
async fn management() -> (tempfile::TempDir, cairn::local::ApiServer, DynamicApi) {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::start("mgmt", root.path()).await;
    let api = DynamicApi::new(mgmt.client().await.unwrap());
    env::install_capi(&api).await;
    (root, mgmt, api)
}

fn config(mgmt: &cairn::local::ApiServer, root: &Path) -> SimulatorConfig {
    let mut config =
        SimulatorConfig::new(mgmt.kubeconfig.clone(), root.join("state"), env::assets());
    config.machine_delay = Duration::from_millis(200);
    config.poll_interval = Duration::from_millis(200);
    config
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(-1)
}

fn condition(obj: &Value, type_: &str) -> String {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| str_at(c, "/status").to_string())
        .unwrap_or_else(|| "absent".to_string())
}

fn id(api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": ns, "name": name}})
}

async fn get(
    api: &DynamicApi,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    api.get(&id(api_version, kind, ns, name))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn list(api: &DynamicApi, api_version: &str, kind: &str, ns: &str) -> Vec<Value> {
    api.list(api_version, kind, Some(ns), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Cluster `ns/name`, which must exist.
async fn capi_cluster(api: &DynamicApi, ns: &str, name: &str) -> Value {
    get(api, CAPI, "Cluster", ns, name)
        .await
        .unwrap_or_else(|| panic!("no Cluster {ns}/{name}"))
}

/// The KubeadmControlPlane `<cluster>-control-plane` in `ns`, which must exist.
async fn control_plane(api: &DynamicApi, ns: &str, cluster: &str) -> Value {
    let name = format!("{cluster}-control-plane");
    get(api, KCP, "KubeadmControlPlane", ns, &name)
        .await
        .unwrap_or_else(|| panic!("no KubeadmControlPlane {ns}/{name}"))
}

/// The MachineDeployment `ns/name`, which must exist.
async fn machine_deployment(api: &DynamicApi, ns: &str, name: &str) -> Value {
    get(api, CAPI, "MachineDeployment", ns, name)
        .await
        .unwrap_or_else(|| panic!("no MachineDeployment {ns}/{name}"))
}

/// The Machines in `ns` that a MachineSet controls.
async fn worker_machines(api: &DynamicApi, ns: &str) -> Vec<Value> {
    list(api, CAPI, "Machine", ns)
        .await
        .into_iter()
        .filter(|m| controller_of(m).0 == "MachineSet")
        .collect()
}

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| str_at(o, "/metadata/name").to_string())
        .collect()
}

/// Every replica counter of a KubeadmControlPlane or MachineDeployment equals `spec.replicas`,
/// for the current generation, with `RollingOut` False.
fn rolled_out(obj: &Value) -> Result<(), String> {
    let want = int_at(obj, "/spec/replicas");
    let got: Vec<i64> = [
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "upToDateReplicas",
    ]
    .iter()
    .map(|c| int_at(obj, &format!("/status/{c}")))
    .collect();
    if got.iter().any(|g| *g != want) {
        return Err(format!(
            "spec.replicas {want}, status replicas/ready/available/upToDate {got:?}"
        ));
    }
    if int_at(obj, "/status/observedGeneration") != int_at(obj, "/metadata/generation") {
        return Err("observedGeneration is behind".into());
    }
    if condition(obj, "RollingOut") != "False" || condition(obj, "Available") != "True" {
        return Err(format!(
            "RollingOut {}, Available {}",
            condition(obj, "RollingOut"),
            condition(obj, "Available")
        ));
    }
    Ok(())
}

/// A CNI as a bootstrap layer ships it: a DaemonSet that tolerates every taint and writes the
/// node's CNI configuration (the simulator's kubelets are Ready only once one runs).
fn cni() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "test-cni", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "test-cni"}},
            "template": {
                "metadata": {"labels": {"app": "test-cni"}},
                "spec": {
                    "hostNetwork": true,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "cni", "image": "registry.k8s.io/pause:3.10"}],
                    "volumes": [{"name": "net", "hostPath": {"path": "/etc/cni/net.d"}}],
                },
            },
        },
    })
}

/// A client of the cluster's workload API server, with a CNI installed there (as cairn's
/// bootstrap layers do once the server answers).
async fn workload_client(
    mgmt: &DynamicApi,
    ns: &str,
    cluster: &str,
) -> Result<kube::Client, String> {
    let client = workload_client_without_cni(mgmt, ns, cluster).await?;
    DynamicApi::new(client.clone())
        .apply(&cni(), false, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

async fn workload_client_without_cni(
    mgmt: &DynamicApi,
    ns: &str,
    cluster: &str,
) -> Result<kube::Client, String> {
    let secret = get(mgmt, "v1", "Secret", ns, &format!("{cluster}-kubeconfig"))
        .await
        .ok_or("no kubeconfig Secret")?;
    if secret["type"] != "cluster.x-k8s.io/secret"
        || str_at(&secret, "/metadata/labels/cluster.x-k8s.io~1cluster-name") != cluster
    {
        return Err(format!(
            "kubeconfig Secret is not shaped like CAPI's: {secret}"
        ));
    }
    let value = base64::engine::general_purpose::STANDARD
        .decode(str_at(&secret, "/data/value"))
        .map_err(|e| e.to_string())?;
    client_from_kubeconfig(&String::from_utf8_lossy(&value))
        .await
        .map_err(|e| e.to_string())
}

/// A client of the cluster's workload API server, once it answers with `count` Ready Nodes.
async fn workload_with_nodes(
    mgmt: &DynamicApi,
    ns: &str,
    cluster: &str,
    count: usize,
) -> Result<kube::Client, String> {
    let client = workload_client(mgmt, ns, cluster).await?;
    let nodes = node_names(&client).await?;
    if nodes.len() == count {
        Ok(client)
    } else {
        Err(format!("Nodes {nodes:?}"))
    }
}

async fn assert_stopped(workload: &kube::Client) {
    assert!(
        node_names(workload).await.is_err(),
        "the workload API server no longer answers"
    );
}

async fn node_names(client: &kube::Client) -> Result<Vec<String>, String> {
    let api = DynamicApi::new(client.clone());
    let nodes = api
        .list("v1", "Node", None, None)
        .await
        .map_err(|e| e.to_string())?;
    for node in &nodes {
        if condition(node, "Ready") != "True" {
            return Err(format!(
                "Node {} is not Ready",
                str_at(node, "/metadata/name")
            ));
        }
    }
    let mut names = names(&nodes);
    names.sort();
    Ok(names)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn controller_of(obj: &Value) -> (String, String) {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| {
            (
                str_at(r, "/kind").to_string(),
                str_at(r, "/name").to_string(),
            )
        })
        .unwrap_or_default()
}

const BOOTSTRAP: &str = "bootstrap.cluster.x-k8s.io/v1beta2";

/// The kinds a cluster's CAPI objects have, owners before what they own.
const CAPI_KINDS: [(&str, &str); 11] = [
    (CAPI, "Cluster"),
    (INFRA, "DockerCluster"),
    (KCP, "KubeadmControlPlane"),
    (INFRA, "DockerMachineTemplate"),
    (BOOTSTRAP, "KubeadmConfigTemplate"),
    (CAPI, "MachineDeployment"),
    (CAPI, "MachineSet"),
    (CAPI, "Machine"),
    (BOOTSTRAP, "KubeadmConfig"),
    (INFRA, "DockerMachine"),
    ("v1", "Secret"),
];

/// The objects of one of CAPI_KINDS in `ns` (of Secrets, only those CAPI writes).
async fn capi_objects(api: &DynamicApi, api_version: &str, kind: &str, ns: &str) -> Vec<Value> {
    let mut objects = list(api, api_version, kind, ns).await;
    objects.retain(|obj| kind != "Secret" || obj["type"] == "cluster.x-k8s.io/secret");
    objects
}

/// `Kind/name` -> resourceVersion of every CAPI object (and CAPI Secret) in `ns`.
async fn resource_versions(
    api: &DynamicApi,
    ns: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (api_version, kind) in CAPI_KINDS {
        for obj in capi_objects(api, api_version, kind, ns).await {
            out.insert(
                format!("{kind}/{}", str_at(&obj, "/metadata/name")),
                str_at(&obj, "/metadata/resourceVersion").to_string(),
            );
        }
    }
    out
}

/// A minimal `clusterctl move` of one cluster's namespace, with simulator passes between its
/// steps: pause, create in the target owners first (owner uids rewritten), delete from the
/// source in reverse order (annotated delete-for-move, finalizers cleared), unpause.
async fn move_cluster(sim: &mut Simulator, source: &DynamicApi, target: &DynamicApi, ns: &str) {
    let cluster = capi_cluster(source, ns, ns).await;
    source
        .merge_patch(&cluster, &json!({"spec": {"paused": true}}), "test-mover")
        .await
        .unwrap();
    sim.reconcile_once().await.unwrap();
    apply_all(
        target,
        &[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})],
    )
    .await;
    let mut uids = std::collections::HashMap::new();
    let mut moved = Vec::new();
    for (api_version, kind) in CAPI_KINDS {
        for obj in capi_objects(source, api_version, kind, ns).await {
            let mut copy = obj.clone();
            copy.as_object_mut().unwrap().remove("status");
            let meta = copy["metadata"].as_object_mut().unwrap();
            for field in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
            ] {
                meta.remove(field);
            }
            if let Some(refs) = meta
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                for r in refs {
                    let old = str_at(r, "/uid").to_string();
                    r["uid"] = uids
                        .get(&old)
                        .cloned()
                        .unwrap_or_else(|| panic!("owner {old} of {kind} not moved yet"));
                }
            }
            let created = target
                .apply(&copy, false, true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            uids.insert(
                str_at(&obj, "/metadata/uid").to_string(),
                created["metadata"]["uid"].clone(),
            );
            moved.push(obj);
        }
        sim.reconcile_once().await.unwrap();
    }
    for obj in moved.iter().rev() {
        let annotate = json!({"metadata": {"annotations": {"clusterctl.cluster.x-k8s.io/delete-for-move": ""}}});
        source
            .merge_patch(obj, &annotate, "test-mover")
            .await
            .unwrap();
        source.delete(obj).await.unwrap();
        if let Some(left) = source.get(obj).await.unwrap() {
            source
                .merge_patch(
                    &left,
                    &json!({"metadata": {"finalizers": null}}),
                    "test-mover",
                )
                .await
                .unwrap();
        }
    }
    sim.reconcile_once().await.unwrap();
    let cluster = capi_cluster(target, ns, ns).await;
    target
        .merge_patch(&cluster, &json!({"spec": {"paused": null}}), "test-mover")
        .await
        .unwrap();
}

/// The agent's Deployment in a workload cluster, as it is now.
async fn agent_deployment(workload: &DynamicApi) -> Value {
    get(
        workload,
        "apps/v1",
        "Deployment",
        "cairn-system",
        "cairn-agent",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_cluster_comes_up_scales_rolls_runs_its_agent_and_is_torn_down() {
    let (root, mgmt, api) = management().await;
    let (ns, cluster) = ("dev-docker-1", "dev-docker-1");
    let mut config = config(&mgmt, root.path());
    let agent_log = root.path().join("agent-starts.log");
    // The image's entrypoint logs the container's args and the kubeconfig it was given.
    config.agent_image = Some(cairn::local::simulator::AgentImage {
        entrypoint: vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo \"$* $KUBECONFIG $TMPDIR\" >> {}; exec sleep 60",
                agent_log.display()
            ),
            "entrypoint".into(),
        ],
        extra_args: vec!["--extra".into()],
    });
    let mut sim = Simulator::new(config).await.unwrap();

    // (1) The bootstrap stage: one control-plane machine and a reachable workload API server,
    // whose Node is not Ready (nor its Machine) until a CNI runs there.
    apply_all(&api, &stage(cluster, StageName::Bootstrap)).await;
    converge!(sim, "a Node that waits for its CNI", {
        let client = workload_client_without_cni(&api, ns, cluster).await?;
        let nodes = DynamicApi::new(client)
            .list("v1", "Node", None, None)
            .await
            .map_err(|e| e.to_string())?;
        let [node] = nodes.as_slice() else {
            return Err(format!("{} Nodes", nodes.len()));
        };
        let ready = node["status"]["conditions"][0].clone();
        let taints = node["spec"]["taints"].to_string();
        let machines = list(&api, CAPI, "Machine", ns).await;
        if ready["status"] == "False"
            && ready["message"]
                .as_str()
                .unwrap_or_default()
                .contains("cni plugin not initialized")
            && taints.contains("node.kubernetes.io/not-ready")
            && machines.len() == 1
            && machines[0]["status"]["nodeRef"]["name"].is_string()
            && condition(&machines[0], "Ready") == "False"
        {
            Ok(())
        } else {
            Err(format!("Node {ready} taints {taints}"))
        }
    });
    let workload = converge!(
        sim,
        "the workload API server through the kubeconfig Secret",
        workload_with_nodes(&api, ns, cluster, 1).await
    );
    converge!(sim, "the control plane", {
        let kcp = control_plane(&api, ns, cluster).await;
        let cl = capi_cluster(&api, ns, cluster).await;
        if cl.pointer("/status/initialization/controlPlaneInitialized") != Some(&json!(true))
            || condition(&cl, "ControlPlaneInitialized") != "True"
        {
            Err(format!("Cluster status {}", cl["status"]))
        } else {
            rolled_out(&kcp)
        }
    });
    let machines = list(&api, CAPI, "Machine", ns).await;
    assert_eq!(machines.len(), 1, "{machines:?}");
    let cp_machine = &machines[0];
    let cp_name = str_at(cp_machine, "/metadata/name").to_string();
    assert_eq!(
        controller_of(cp_machine),
        (
            "KubeadmControlPlane".into(),
            "dev-docker-1-control-plane".into()
        )
    );
    assert_eq!(str_at(cp_machine, "/status/nodeRef/name"), cp_name);
    assert_eq!(str_at(cp_machine, "/status/phase"), "Running");
    for label in [
        "cluster.x-k8s.io~1control-plane",
        "cluster.x-k8s.io~1control-plane-name",
    ] {
        assert!(
            cp_machine
                .pointer(&format!("/metadata/labels/{label}"))
                .is_some()
        );
    }
    let docker_machine = get(&api, INFRA, "DockerMachine", ns, &cp_name)
        .await
        .unwrap();
    assert_eq!(
        controller_of(&docker_machine),
        ("Machine".into(), cp_name.clone())
    );
    assert_eq!(
        docker_machine["status"]["initialization"]["provisioned"],
        true
    );
    assert_eq!(
        docker_machine["spec"]["extraMounts"][0]["containerPath"], "/var/run/docker.sock",
        "cloned from the template"
    );
    let config_obj = get(&api, BOOTSTRAP, "KubeadmConfig", ns, &cp_name)
        .await
        .unwrap();
    assert_eq!(
        controller_of(&config_obj),
        ("Machine".into(), cp_name.clone())
    );
    assert!(config_obj.pointer("/spec/initConfiguration").is_some());
    for suffix in ["ca", "etcd", "sa", "proxy"] {
        let secret = get(&api, "v1", "Secret", ns, &format!("{cluster}-{suffix}"))
            .await
            .unwrap_or_else(|| panic!("no {cluster}-{suffix} Secret"));
        assert_eq!(controller_of(&secret).0, "KubeadmControlPlane");
        assert!(str_at(&secret, "/data/tls.crt").len() > 100);
    }
    let docker_cluster = get(&api, INFRA, "DockerCluster", ns, cluster)
        .await
        .unwrap();
    assert_eq!(
        docker_cluster["status"]["initialization"]["provisioned"],
        true
    );
    let endpoint_port = int_at(&docker_cluster, "/spec/controlPlaneEndpoint/port");
    let kubeconfig = sim.workload_kubeconfig(cluster).unwrap();
    assert!(kubeconfig.contains(&format!("https://127.0.0.1:{endpoint_port}")));
    let cl = capi_cluster(&api, ns, cluster).await;
    assert_eq!(
        controller_of(&docker_cluster),
        ("Cluster".into(), cluster.into())
    );
    assert_eq!(
        int_at(&cl, "/spec/controlPlaneEndpoint/port"),
        endpoint_port
    );
    assert_eq!(str_at(&cl, "/status/phase"), "Provisioned");

    // (2) The workload stage: the MachineDeployment's machines come up and register Nodes.
    let workload_stage = stage(cluster, StageName::Workload);
    apply_all(&api, &workload_stage).await;
    converge!(sim, "MachineDeployment dev-docker-1-md-0 and its Nodes", {
        let md = machine_deployment(&api, ns, "dev-docker-1-md-0").await;
        rolled_out(&md)?;
        let nodes = node_names(&workload).await?;
        if nodes.len() != 3 {
            return Err(format!("Nodes {nodes:?}"));
        }
        let cl = capi_cluster(&api, ns, cluster).await;
        if condition(&cl, "Available") != "True" {
            return Err(format!(
                "Cluster Available is {}",
                condition(&cl, "Available")
            ));
        }
        Ok::<(), String>(())
    });
    // A converged cluster costs no writes.
    let before = resource_versions(&api, ns).await;
    for _ in 0..3 {
        assert!(sim.reconcile_once().await.unwrap().is_quiet());
    }
    assert_eq!(resource_versions(&api, ns).await, before);

    let sets = list(&api, CAPI, "MachineSet", ns).await;
    assert_eq!(sets.len(), 1);
    assert_eq!(
        controller_of(&sets[0]),
        ("MachineDeployment".into(), "dev-docker-1-md-0".into())
    );
    let set_name = str_at(&sets[0], "/metadata/name").to_string();
    let workers = worker_machines(&api, ns).await;
    assert_eq!(workers.len(), 2);
    let old_workers = names(&workers);
    for m in &workers {
        assert_eq!(controller_of(m).1, set_name);
        let cfg = get(
            &api,
            BOOTSTRAP,
            "KubeadmConfig",
            ns,
            str_at(m, "/metadata/name"),
        )
        .await
        .unwrap();
        assert!(
            cfg.pointer("/spec/joinConfiguration").is_some(),
            "cloned from the KubeadmConfigTemplate"
        );
    }

    // (3) Scale to 3 and move to a new machine template: the old machines are replaced.
    let mut template = workload_stage
        .iter()
        .find(|o| {
            o["kind"] == "DockerMachineTemplate" && str_at(o, "/metadata/name").contains("-md-0-")
        })
        .unwrap()
        .clone();
    template["metadata"]["name"] = "dev-docker-1-md-0-0123456789".into();
    template["spec"]["template"]["spec"]["customImage"] = "kindest/node:v1.34.2".into();
    let mut md = workload_stage
        .iter()
        .find(|o| o["kind"] == "MachineDeployment")
        .unwrap()
        .clone();
    md["spec"]["replicas"] = 3.into();
    md["spec"]["template"]["spec"]["infrastructureRef"]["name"] =
        "dev-docker-1-md-0-0123456789".into();
    apply_all(&api, &[template, md]).await;
    converge!(sim, "the rollout of dev-docker-1-md-0 to 3 new machines", {
        let md = machine_deployment(&api, ns, "dev-docker-1-md-0").await;
        rolled_out(&md)?;
        let workers = worker_machines(&api, ns).await;
        let names = names(&workers);
        if workers.len() != 3
            || names.iter().any(|n| old_workers.iter().any(|o| o == n))
            || workers.iter().any(|m| {
                str_at(m, "/spec/infrastructureRef/name") != str_at(m, "/metadata/name")
                    || str_at(m, "/status/nodeRef/name").is_empty()
            })
        {
            return Err(format!(
                "worker machines {names:?}, the old ones were {old_workers:?}"
            ));
        }
        let nodes = node_names(&workload).await?;
        if nodes.len() != 4 || nodes.iter().any(|n| old_workers.contains(n)) {
            return Err(format!("Nodes {nodes:?}"));
        }
        if list(&api, CAPI, "MachineSet", ns).await.len() != 1 {
            return Err("the old MachineSet is still there".into());
        }
        Ok::<(), String>(())
    });
    for m in list(&api, INFRA, "DockerMachine", ns).await {
        let name = str_at(&m, "/metadata/name");
        if name != cp_name {
            assert_eq!(
                str_at(&m, "/spec/customImage"),
                "kindest/node:v1.34.2",
                "{name} is cloned from the new template"
            );
        }
    }

    // The agent runs when its Deployment appears in the workload cluster, once.
    let workload_api = DynamicApi::new(workload.clone());
    // Its pod, as the render writes it in part: a ServiceAccount, a ConfigMap volume mounted
    // at a path the args name, a read-only root, and pinned to the control-plane nodes. First
    // without tolerations: kubeadm taints those nodes, so it is not scheduled.
    let mut agent = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cairn-agent", "namespace": "cairn-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "cairn-agent"}},
            "template": {
                "metadata": {"labels": {"app": "cairn-agent"}},
                "spec": {
                    "serviceAccountName": "cairn-agent",
                    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                    "containers": [{
                        "name": "agent", "image": "cairn:test",
                        "args": ["agent", "--config", "/etc/cairn/config/config.yaml"],
                        "securityContext": {"readOnlyRootFilesystem": true},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/cairn/config"}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "cairn-agent-config"}}],
                },
            },
        },
    });
    apply_all(
        &workload_api,
        &[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cairn-system"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "cairn-agent", "namespace": "cairn-system"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cairn-agent-config", "namespace": "cairn-system"},
                   "data": {"config.yaml": "cluster: dev-docker-1\n"}}),
            agent.clone(),
        ],
    )
    .await;
    let why = converge!(sim, "the agent's pod reported unschedulable", {
        let deployment = agent_deployment(&workload_api).await;
        let message = deployment["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match sim.agent_pid(cluster) {
            None if message.contains("untolerated taint") => Ok(message),
            pid => Err(format!("pid {pid:?}, status {}", deployment["status"])),
        }
    });
    assert!(
        why.contains("node-role.kubernetes.io/control-plane: NoSchedule"),
        "{why}"
    );
    agent["spec"]["template"]["spec"]["tolerations"] = json!([
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]);
    apply_all(&workload_api, &[agent]).await;
    let agent_pid = converge!(sim, "the agent process and its Deployment status", {
        let deployment = agent_deployment(&workload_api).await;
        match sim.agent_pid(cluster) {
            Some(pid) if int_at(&deployment, "/status/availableReplicas") == 1 => Ok(pid),
            other => Err(format!(
                "agent pid {other:?}, Deployment status {}",
                deployment["status"]
            )),
        }
    });
    for _ in 0..5 {
        sim.reconcile_once().await.unwrap();
    }
    assert_eq!(sim.agent_pid(cluster), Some(agent_pid), "started once");
    let starts = eventually!("the agent's first log line", {
        let text = std::fs::read_to_string(&agent_log).unwrap_or_default();
        if text.is_empty() {
            Err("empty".to_string())
        } else {
            Ok(text)
        }
    });
    assert_eq!(starts.lines().count(), 1, "{starts}");
    // The container's args with the mount path mapped onto the volume's directory, then the
    // image's extra args; a kubeconfig of the pod's ServiceAccount token; no writable temp dir.
    let words: Vec<&str> = starts.split_whitespace().collect();
    let [agent_arg, config_flag, config, extra, kubeconfig, tmp] = words[..] else {
        panic!("{starts}");
    };
    assert_eq!(
        (agent_arg, config_flag, extra),
        ("agent", "--config", "--extra")
    );
    assert!(config.ends_with("/volumes/config/config.yaml"), "{starts}");
    assert_eq!(
        std::fs::read_to_string(config).unwrap(),
        "cluster: dev-docker-1\n"
    );
    let kubeconfig = std::fs::read_to_string(kubeconfig).unwrap();
    assert!(
        kubeconfig.contains("token:") && !kubeconfig.contains("client-key-data"),
        "{kubeconfig}"
    );
    assert!(std::fs::create_dir_all(tmp).is_err(), "{tmp} is writable");

    // (5) Deleting the Cluster tears everything down and stops its servers.
    let pids = sim.workload_pids(cluster);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    api.delete(&id(CAPI, "Cluster", ns, cluster)).await.unwrap();
    converge!(sim, "the teardown of dev-docker-1", {
        let mut left: Vec<String> = resource_versions(&api, ns).await.into_keys().collect();
        let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if !running.is_empty() {
            left.push(format!("workload server pids {running:?}"));
        }
        if alive(agent_pid) {
            left.push(format!("agent pid {agent_pid}"));
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {}", left.join(", ")))
        }
    });
    assert!(sim.workload_kubeconfig(cluster).is_none());
    assert_stopped(&workload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cluster_gets_nothing_while_another_comes_up_and_the_run_loop_stops_its_servers() {
    let (root, mgmt, api) = management().await;

    // prod-vsphere-1 is paused; staging-aws-1 (CAPA: the v1beta1 status contract) is not.
    let mut paused = stage("prod-vsphere-1", StageName::Bootstrap);
    for obj in &mut paused {
        if obj["kind"] == "Cluster" {
            obj["spec"]["paused"] = true.into();
        }
    }
    apply_all(&api, &paused).await;
    apply_all(&api, &stage("staging-aws-1", StageName::Bootstrap)).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = config(&mgmt, root.path());
    let task = tokio::spawn(cairn::local::simulator::run(config, stopped));

    let aws_ns = "staging-aws-1";
    let workload = eventually!(
        "staging-aws-1's workload API server",
        workload_with_nodes(&api, aws_ns, "staging-aws-1", 1).await
    );
    eventually!(
        "staging-aws-1's control plane",
        rolled_out(&control_plane(&api, aws_ns, "staging-aws-1").await)
    );
    let aws_cluster = get(&api, INFRA, "AWSCluster", aws_ns, "staging-aws-1")
        .await
        .unwrap();
    assert_eq!(
        aws_cluster["status"]["ready"], true,
        "the v1beta1 contract of CAPA"
    );
    let aws_machine = list(&api, INFRA, "AWSMachine", aws_ns).await;
    assert_eq!(aws_machine.len(), 1);
    assert_eq!(aws_machine[0]["status"]["ready"], true);

    // By now the paused cluster would have been up too; it has nothing.
    let ns = "prod-vsphere-1";
    assert!(list(&api, CAPI, "Machine", ns).await.is_empty());
    assert!(
        get(&api, "v1", "Secret", ns, "prod-vsphere-1-kubeconfig")
            .await
            .is_none()
    );
    let cl = capi_cluster(&api, ns, "prod-vsphere-1").await;
    assert!(
        cl.get("status")
            .is_none_or(|s| s.as_object().is_some_and(|o| o.is_empty())),
        "{cl}"
    );
    assert!(cl.pointer("/metadata/finalizers").is_none(), "{cl}");
    let kcp = control_plane(&api, ns, "prod-vsphere-1").await;
    assert!(kcp.get("status").is_none(), "{kcp}");
    assert!(kcp.pointer("/metadata/ownerReferences").is_none(), "{kcp}");
    let infra = get(&api, INFRA, "VSphereCluster", ns, "prod-vsphere-1")
        .await
        .unwrap();
    assert!(infra.get("status").is_none(), "{infra}");

    // Shutting the loop down stops the workload server it started.
    stop.send(true).unwrap();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("the run loop stops")
        .unwrap()
        .unwrap();
    assert_stopped(&workload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pivoted_cluster_is_followed_into_its_own_workload_server() {
    let (root, mgmt, api) = management().await;
    let (ns, cluster) = ("dev-docker-1", "dev-docker-1");
    let mut sim = Simulator::new(config(&mgmt, root.path())).await.unwrap();
    apply_all(&api, &stage(cluster, StageName::Bootstrap)).await;
    let workload = converge!(
        sim,
        "dev-docker-1's control plane in the management server",
        {
            let client = workload_client(&api, ns, cluster).await?;
            rolled_out(&control_plane(&api, ns, cluster).await)?;
            Ok(client)
        }
    );
    let pids = sim.workload_pids(cluster);
    let cp_machines = names(&list(&api, CAPI, "Machine", ns).await);

    // Pivot: the cluster's CAPI objects move into its own workload server.
    // First with the CRDs alone, as a move that forgot the providers would leave it: nobody
    // reconciles the Cluster there, and the simulator says why.
    let target = DynamicApi::new(workload.clone());
    install_crds(&target, &env::crds(), Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    move_cluster(&mut sim, &api, &target, ns).await;
    let report = sim.reconcile_once().await.unwrap();
    let waiting = report.without_providers.join("; ");
    assert!(
        waiting.contains("dev-docker-1/dev-docker-1@")
            && waiting.contains("cluster-api, bootstrap-kubeadm"),
        "{report:?}"
    );
    assert!(report.clusters.is_empty(), "{report:?}");
    // `clusterctl init` in the target: its provider Deployments tolerate the control-plane
    // taint, are scheduled there, and the Cluster is reconciled where it lives now. cert-manager's
    // tolerate nothing, and the only Node is the control plane's: they get the toleration the
    // move gives them (`component_copy`), without which the providers' serving certificates are
    // never issued and no provider starts.
    env::install_capi(&target).await;
    for deployment in target
        .list("apps/v1", "Deployment", Some("cert-manager"), None)
        .await
        .unwrap()
    {
        let tolerating = cairn::pivot::providers::component_copy(&deployment);
        target.apply(&tolerating, false, true).await.unwrap();
    }
    converge!(sim, "dev-docker-1 reconciled in its workload server", {
        rolled_out(&control_plane(&target, ns, cluster).await)?;
        let cl = capi_cluster(&target, ns, cluster).await;
        if condition(&cl, "ControlPlaneInitialized") != "True" {
            return Err(format!("Cluster status {}", cl["status"]));
        }
        match sim.location(cluster) {
            Some(l) if l.contains("workload") => Ok(()),
            other => Err(format!("the simulator reconciles it in {other:?}")),
        }
    });
    assert_eq!(sim.workload_pids(cluster), pids, "the same workload server");
    assert!(list(&api, CAPI, "Cluster", ns).await.is_empty());
    assert!(list(&api, CAPI, "Machine", ns).await.is_empty());
    let moved = names(&list(&target, CAPI, "Machine", ns).await);
    assert_eq!(moved, cp_machines, "the moved machine, not a new one");
    assert_eq!(node_names(&workload).await.unwrap(), cp_machines);

    // The workload stage goes where the CAPI objects live now.
    apply_all(&target, &stage(cluster, StageName::Workload)).await;
    converge!(sim, "dev-docker-1-md-0 in the workload server", {
        let md = machine_deployment(&target, ns, "dev-docker-1-md-0").await;
        rolled_out(&md)?;
        let nodes = node_names(&workload).await?;
        if nodes.len() == 3 {
            Ok(())
        } else {
            Err(format!("Nodes {nodes:?}"))
        }
    });
    assert!(list(&api, CAPI, "MachineDeployment", ns).await.is_empty());
}

/// The add-ons of the example's stages, as a workload server gets them: one of each kind.
fn add_ons(ns: &str) -> Vec<Value> {
    let template = |app: &str| {
        json!({
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": app, "image": "registry.k8s.io/pause:3.10"}]},
        })
    };
    let selector = |app: &str| json!({"matchLabels": {"app": app}});
    // A node agent runs on control-plane nodes too (the only Node here).
    let mut node_agent = template("node-agent");
    node_agent["spec"]["tolerations"] =
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    let mut job_template = template("job");
    job_template["spec"]["restartPolicy"] = "Never".into();
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 2, "selector": selector("web"), "template": template("web")},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "node-agent", "namespace": ns},
            "spec": {"selector": selector("node-agent"), "template": node_agent},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {
                "replicas": 3, "serviceName": "db",
                "selector": selector("db"), "template": template("db"),
            },
        }),
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"template": job_template},
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_on_workloads_roll_out_and_deleted_namespaces_go() {
    use cairn::apply::health::{Health, health};
    let (root, mgmt, api) = management().await;
    let (ns, cluster) = ("dev-docker-1", "dev-docker-1");
    let mut sim = Simulator::new(config(&mgmt, root.path())).await.unwrap();
    apply_all(&api, &stage(cluster, StageName::Bootstrap)).await;
    let workload = converge!(
        sim,
        "the workload API server of dev-docker-1",
        workload_with_nodes(&api, ns, cluster, 1).await
    );
    let workload_api = DynamicApi::new(workload.clone());

    // Every add-on workload becomes Ready by cairn's health rules.
    let add_ons = add_ons("add-ons");
    apply_all(&workload_api, &add_ons).await;
    let live = converge!(sim, "the add-on workloads", {
        let mut live = Vec::new();
        for obj in &add_ons[1..] {
            let got = workload_api.get(obj).await.unwrap().unwrap();
            if health(&got) != Health::Ready {
                return Err(format!("{}: {:?}", str_at(obj, "/kind"), health(&got)));
            }
            live.push(got);
        }
        Ok(live)
    });
    assert_eq!(int_at(&live[0], "/status/availableReplicas"), 2);
    assert_eq!(
        int_at(&live[1], "/status/desiredNumberScheduled"),
        1,
        "one Node, whose taint it tolerates"
    );
    assert_eq!(int_at(&live[2], "/status/readyReplicas"), 3);
    assert_eq!(condition(&live[3], "Complete"), "True");
    // Converged: no more writes.
    for _ in 0..3 {
        assert!(sim.reconcile_once().await.unwrap().is_quiet());
    }
    for (before, obj) in live.iter().zip(&add_ons[1..]) {
        let after = workload_api.get(obj).await.unwrap().unwrap();
        assert_eq!(
            str_at(&after, "/metadata/resourceVersion"),
            str_at(before, "/metadata/resourceVersion"),
            "{} was written again",
            str_at(obj, "/kind")
        );
    }

    // A deleted Namespace is emptied and goes.
    let doomed = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}});
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "doomed"},
        "data": {"k": "v"},
    });
    apply_all(&workload_api, &[doomed.clone(), config_map.clone()]).await;
    workload_api.delete(&doomed).await.unwrap();
    converge!(sim, "the deletion of Namespace doomed", {
        match workload_api.get(&doomed).await.unwrap() {
            None => Ok(()),
            Some(left) => Err(format!(
                "Namespace doomed is still there: {}",
                left["status"]
            )),
        }
    });
    assert!(workload_api.get(&config_map).await.unwrap().is_none());
}
