//! An apply killed midway, and an apply during which the management API server restarts, both
//! converge on the next run (against real API servers with the CAPI CRDs and the simulator).

mod env;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::apply::health::{Health, health};
use cairn::lifecycle::ApplyOptions;
use cairn::lifecycle::cluster::apply_cluster;
use cairn::lifecycle::diff::diff_cluster;
use cairn::lifecycle::phase::{
    BUNDLE_HASH_ANNOTATION, PHASE_ANNOTATION, REVISION_ANNOTATION, bundle_hash,
};
use cairn::lifecycle::workload::workload_api;
use cairn::local::ApiServer;
use cairn::local::simulator::{SimulatorConfig, run};
use cairn::model::types::StageName;
use cairn::render::{Bundle, render_repo};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const CLUSTER: &str = "dev-docker-1";
const CAPI: &str = "cluster.x-k8s.io/v1beta2";
/// Longest any one step of these tests may take before it fails naming what was not ready.
const STEP: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(50);

fn bundle() -> Bundle {
    let rendered = render_repo(&cairn::example::example_snapshot(), &[CLUSTER.to_string()]);
    assert!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    rendered.bundles.into_iter().next().unwrap()
}

fn capi_cluster() -> Value {
    json!({"apiVersion": CAPI, "kind": "Cluster",
           "metadata": {"name": CLUSTER, "namespace": CLUSTER}})
}

/// A management server with the CAPI CRDs and the provider simulator, slow enough (machines
/// take 1.5 s) that an apply spends a while in each of its waits.
struct Mgmt {
    root: tempfile::TempDir,
    server: ApiServer,
    api: Arc<KubeClusterApi>,
    stop: watch::Sender<bool>,
    simulator: JoinHandle<Result<(), cairn::local::simulator::SimulatorError>>,
}

impl Mgmt {
    async fn start() -> Mgmt {
        let root = tempfile::tempdir().unwrap();
        let server: ApiServer = env::start("mgmt", root.path()).await;
        let api = Arc::new(KubeClusterApi::new(server.client().await.unwrap(), false));
        env::install_capi(api.dynamic()).await;
        let mut config = SimulatorConfig::new(
            server.kubeconfig.clone(),
            root.path().join("clusters"),
            env::assets(),
        );
        config.machine_delay = Duration::from_millis(1500);
        config.poll_interval = Duration::from_millis(300);
        let (stop, shutdown) = watch::channel(false);
        let simulator = tokio::spawn(run(config, shutdown));
        Mgmt {
            root,
            server,
            api,
            stop,
            simulator,
        }
    }

    async fn cluster(&self) -> Option<Value> {
        self.api.get(&capi_cluster()).await.unwrap()
    }

    async fn phase(&self) -> Option<String> {
        self.cluster().await.and_then(|c| {
            c.pointer(&format!(
                "/metadata/annotations/{}",
                PHASE_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(str::to_string)
        })
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.simulator.await.unwrap().unwrap();
    }
}

/// Polls `check` until it returns a value, failing after `STEP` with `what` was not reached.
async fn wait_for<T>(what: &str, check: impl AsyncFn() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < STEP, "not reached after {STEP:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// `cairn apply` of the example cluster as a child process, its output going to `log`.
fn spawn_apply(kubeconfig: &Path, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "apply",
            "--example",
            "--cluster",
            CLUSTER,
            "--timeout",
            "120s",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn exited(child: &Mutex<Child>) -> Option<ExitStatus> {
    child.lock().unwrap().try_wait().unwrap()
}

/// Where a run of `cairn apply` is killed.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// The Cluster exists and the apply waits for its control plane.
    Provisioning,
    /// The workload stage is applied and the apply waits for the machines to roll out.
    Converging,
    /// Midway through the add-ons: the first is in the workload cluster, the last is not. For
    /// this cluster every layer is a bootstrap layer, so this is before the machines roll out.
    AddOns,
}

impl KillPoint {
    async fn reached(self, mgmt: &Mgmt, (first_addon, last_addon): (&Value, &Value)) -> bool {
        match self {
            KillPoint::Provisioning => {
                mgmt.cluster().await.is_some()
                    && matches!(mgmt.phase().await.as_deref(), None | Some("Provisioning"))
            }
            KillPoint::Converging => mgmt.phase().await.as_deref() == Some("Converging"),
            KillPoint::AddOns => {
                let Some(workload) = workload_api(mgmt.api.as_ref(), CLUSTER).await.unwrap() else {
                    return false;
                };
                // The workload server may not serve the add-on's kind yet: not reached.
                let exists = async |obj| workload.get(obj).await.ok().flatten().is_some();
                exists(first_addon).await && !exists(last_addon).await
            }
        }
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn list(api: &impl ClusterApi, api_version: &str, kind: &str, ns: &str) -> Vec<Value> {
    api.list(api_version, kind, Some(ns), None).await.unwrap()
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn of_kind(objects: &[Value], kind: &str) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .cloned()
        .collect()
}

/// The cluster is Ready for this bundle and revision, nothing differs from the repository,
/// nothing is duplicated and nothing is left half-done.
async fn assert_converged(mgmt: &Mgmt, bundle: &Bundle, revision: &str) {
    let cluster = mgmt.cluster().await.expect("the Cluster exists");
    let annotations = &cluster["metadata"]["annotations"];
    assert_eq!(annotations[PHASE_ANNOTATION], "Ready", "{annotations}");
    assert_eq!(annotations[REVISION_ANNOTATION], revision, "{annotations}");
    assert_eq!(
        annotations[BUNDLE_HASH_ANNOTATION],
        bundle_hash(bundle).as_str()
    );
    assert_ne!(cluster["spec"]["paused"], true, "the Cluster is paused");

    let plan = diff_cluster(&mgmt.api, bundle, false).await.unwrap();
    let changes: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action.writes())
        .map(|c| format!("{} {}", c.action.as_str(), c.key))
        .collect();
    assert!(changes.is_empty(), "not converged: {changes:#?}");

    // Exactly the rendered CAPI objects, each healthy, and as many Machines as replicas.
    let workload_stage = &bundle.stage(StageName::Workload).unwrap().objects;
    let mut replicas = 0;
    for (kind, api_version) in [
        ("Cluster", CAPI),
        ("MachineDeployment", CAPI),
        (
            "KubeadmControlPlane",
            "controlplane.cluster.x-k8s.io/v1beta2",
        ),
    ] {
        let live = list(mgmt.api.as_ref(), api_version, kind, CLUSTER).await;
        let rendered: Vec<Value> = of_kind(workload_stage, kind)
            .into_iter()
            .chain(of_kind(
                &bundle.stage(StageName::Bootstrap).unwrap().objects,
                kind,
            ))
            .collect();
        let mut want = names(&rendered);
        want.dedup();
        assert_eq!(names(&live), want, "{kind} objects");
        for obj in &live {
            if kind != "Cluster" {
                assert_eq!(health(obj), Health::Ready, "{kind} {}", obj["metadata"]);
                replicas += obj["spec"]["replicas"].as_i64().unwrap();
            }
        }
    }
    let machines = list(mgmt.api.as_ref(), CAPI, "Machine", CLUSTER).await;
    assert_eq!(
        machines.len() as i64,
        replicas,
        "Machines: {:?}",
        names(&machines)
    );
    for obj in &machines {
        assert!(
            obj["metadata"]["deletionTimestamp"].is_null(),
            "Machine being deleted: {}",
            obj["metadata"]
        );
    }

    // One inventory per stage and cluster, on each side.
    let workload = workload_api(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .expect("the workload kubeconfig exists");
    for (api, stages) in [
        (
            mgmt.api.as_ref(),
            vec![StageName::Bootstrap, StageName::Workload],
        ),
        (&workload, vec![StageName::Addons]),
    ] {
        let found = api
            .list(
                "v1",
                "ConfigMap",
                None,
                Some(&format!("cairn.dev/cluster={CLUSTER},cairn.dev/inventory")),
            )
            .await
            .unwrap();
        let mut want: Vec<String> = stages
            .iter()
            .map(|s| format!("cairn-inventory-{CLUSTER}-{}", s.as_str()))
            .collect();
        want.sort();
        assert_eq!(names(&found), want, "inventory ConfigMaps");
    }

    // Every add-on exists and is healthy now.
    let addons = &bundle.stage(StageName::Addons).unwrap().objects;
    cairn::apply::wait::wait_healthy(&workload, addons, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("add-ons: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_midway_converges_on_the_next_run() {
    let mgmt = Mgmt::start().await;
    let bundle = bundle();
    let addons = &bundle.stage(StageName::Addons).unwrap().objects;
    let (first_addon, last_addon) = (&addons[0], addons.last().unwrap());
    let kubeconfig = mgmt.server.kubeconfig_path.clone();

    for (i, point) in [
        KillPoint::Provisioning,
        KillPoint::AddOns,
        KillPoint::Converging,
    ]
    .into_iter()
    .enumerate()
    {
        let log = mgmt.root.path().join(format!("apply-{i}.log"));
        let child = Mutex::new(spawn_apply(&kubeconfig, &log));
        let what = format!(
            "kill point {point:?} in `cairn apply` (log {})",
            log.display()
        );
        wait_for(&what, async || {
            if let Some(status) = exited(&child) {
                panic!(
                    "`cairn apply` ended ({status}) before kill point {point:?}:\n{}",
                    log_of(&log)
                );
            }
            point
                .reached(&mgmt, (first_addon, last_addon))
                .await
                .then_some(())
        })
        .await;
        let mut child = child.into_inner().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("killed at {point:?}; phase {:?}", mgmt.phase().await);
        assert_ne!(
            mgmt.phase().await.as_deref(),
            Some("Ready"),
            "killed at {point:?} after the apply had finished"
        );
    }

    let log = mgmt.root.path().join("apply-final.log");
    let child = Mutex::new(spawn_apply(&kubeconfig, &log));
    let status = wait_for("the final `cairn apply` to exit", async || exited(&child)).await;
    assert!(status.success(), "{status}:\n{}", log_of(&log));
    assert_converged(&mgmt, &bundle, "working-tree").await;
    mgmt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_survives_an_api_server_restart() {
    let mut mgmt = Mgmt::start().await;
    let bundle = bundle();
    let opts = ApplyOptions::new(false, Duration::from_secs(120), "restarted");
    let apply = {
        let (api, bundle, opts) = (mgmt.api.clone(), bundle.clone(), opts.clone());
        tokio::spawn(async move { apply_cluster(&api, &bundle, &opts).await })
    };

    // While it waits for the control plane the server is down for a few seconds; while the
    // machines roll out it restarts at once.
    for phase in ["Provisioning", "Converging"] {
        let what = format!("phase {phase} during the in-process apply");
        wait_for(&what, async || {
            assert!(!apply.is_finished(), "the apply ended before phase {phase}");
            (mgmt.phase().await.as_deref() == Some(phase)).then_some(())
        })
        .await;
        let restarted = if phase == "Provisioning" {
            mgmt.server.stop_apiserver();
            tokio::time::sleep(Duration::from_secs(3)).await;
            mgmt.server.start_apiserver().await
        } else {
            mgmt.server.restart_apiserver().await
        };
        restarted.unwrap_or_else(|e| panic!("restarting the API server: {e}"));
    }
    let report = tokio::time::timeout(STEP, apply)
        .await
        .expect("the apply did not finish after the restarts")
        .unwrap()
        .unwrap_or_else(|e| panic!("the apply failed across the restarts: {e}"));
    assert!(report.written() > 0);
    assert_converged(&mgmt, &bundle, "restarted").await;

    // The next apply writes nothing, on either side.
    let workload = workload_api(mgmt.api.as_ref(), CLUSTER)
        .await
        .unwrap()
        .unwrap();
    let addons = bundle.stage(StageName::Addons).unwrap().objects.clone();
    let mut versions = Vec::new();
    for obj in &addons {
        versions
            .push(workload.get(obj).await.unwrap().unwrap()["metadata"]["resourceVersion"].clone());
    }
    let writes = mgmt.api.counters.writes.load(Ordering::Relaxed);
    let report = apply_cluster(&mgmt.api, &bundle, &opts).await.unwrap();
    assert_eq!(report.written(), 0, "{report:?}");
    assert_eq!(
        mgmt.api.counters.writes.load(Ordering::Relaxed),
        writes,
        "writes to the management cluster"
    );
    for (obj, before) in addons.iter().zip(&versions) {
        let live = workload.get(obj).await.unwrap().unwrap();
        assert_eq!(
            &live["metadata"]["resourceVersion"], before,
            "written to the workload cluster: {}",
            obj["metadata"]
        );
    }
    mgmt.stop().await;
}
