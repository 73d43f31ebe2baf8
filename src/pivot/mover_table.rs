//! The mover's resume as one table, in the shape of clusterctl's `moveTests`: in both
//! directions, a clean move, a finished move run again, and a move crashed right after each
//! step of [`Step::ALL`] (the after-step hook panics) and then run again, each on fresh
//! in-memory API servers ([`MemoryApi`]). Every case must end the same way: every object in the
//! target once, owned by its owners' target uids, none left in the source, the Cluster
//! unpaused with its journal closed, and a report that says what the last run did. The same
//! property on real API servers (slowly) is tests/pivot_faults.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{Value, json};

use super::checks::DELETE_FOR_MOVE_ANNOTATION;
use super::copy::owner_key;
use super::discover::{CLUSTERCTL_LABEL, discover};
use super::graph::MOVE_LABEL;
use super::mover::{MoveOptions, MoveReport, Mover};
use super::steps::{AfterStep, Direction, JOURNAL_ANNOTATION, Journal, Step};
use crate::apply::api::{ClusterApi, MOVE_MANAGER};
use crate::apply::memory::MemoryApi;
use crate::diff::key::ObjectKey;
use crate::render::capi::{
    BOOTSTRAP_API, CLUSTER_API, CONTROL_PLANE_API, INFRA_API, cluster_ref, kubeconfig_secret,
};
use crate::render::kinds::{api_group, resource_name};
use crate::render::pivot::AGENT_NAMESPACE;

const CLUSTER: &str = "dev-docker-1";
/// A ConfigMap in the cluster's namespace that nothing of the cluster owns: it never moves.
const STAYS: &str = "not-capi";

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A CRD served (and stored) at `api_version`; labelled as `clusterctl init` labels a
/// provider's when `provider` is given.
fn crd(api_version: &str, kind: &str, provider: Option<&str>) -> Value {
    let (group, version) = api_version.split_once('/').expect("a group");
    let plural = resource_name(kind);
    let labels = provider.map_or(
        json!({}),
        |p| json!({CLUSTERCTL_LABEL: "", "cluster.x-k8s.io/provider": p}),
    );
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": format!("{plural}.{group}"), "labels": labels},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "listKind": format!("{kind}List")},
                    "versions": [{"name": version, "served": true, "storage": true,
                                  "subresources": {"status": {}}}]}})
}

/// What the management cluster has installed: the providers' CRDs, clusterctl's inventory
/// kind (labelled, never moved), and another operator's CRD, which a move leaves alone.
fn crds() -> Vec<Value> {
    let providers = [
        (
            CLUSTER_API,
            "cluster-api",
            &["Cluster", "MachineDeployment", "MachineSet", "Machine"][..],
        ),
        (
            CONTROL_PLANE_API,
            "control-plane-kubeadm",
            &["KubeadmControlPlane"],
        ),
        (
            BOOTSTRAP_API,
            "bootstrap-kubeadm",
            &["KubeadmConfig", "KubeadmConfigTemplate"],
        ),
        (
            INFRA_API,
            "infrastructure-docker",
            &["DockerCluster", "DockerMachineTemplate", "DockerMachine"],
        ),
        (
            "clusterctl.cluster.x-k8s.io/v1alpha3",
            "clusterctl",
            &["Provider"],
        ),
    ];
    let mut crds: Vec<Value> = providers
        .iter()
        .flat_map(|(api, provider, kinds)| kinds.iter().map(|k| crd(api, k, Some(provider))))
        .collect();
    crds.push(crd("cert-manager.io/v1", "Certificate", None));
    crds
}

fn is_labelled(crd: &Value) -> bool {
    crd.pointer("/metadata/labels")
        .is_some_and(|l| l.get(CLUSTERCTL_LABEL).is_some())
}

/// Seeds `api` with Cluster CLUSTER as CAPI leaves it: each object written after its owners,
/// owned by the uids the server gave them (controller references, as CAPI sets them).
fn seed_cluster(api: &MemoryApi) {
    for crd in crds() {
        api.seed(&crd);
    }
    api.seed(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER}}));
    let mut refs: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut add = |api_version: &str,
                   kind: &str,
                   name: &str,
                   owner: Option<(&str, &str)>,
                   body: Value| {
        let mut obj = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": CLUSTER,
                         "labels": {"cluster.x-k8s.io/cluster-name": CLUSTER}}});
        json_patch::merge(&mut obj, &body);
        if let Some((owner_kind, owner_name)) = owner {
            let owner_ref = &refs[&(owner_kind.to_string(), owner_name.to_string())];
            obj["metadata"]["ownerReferences"] = json!([owner_ref]);
        }
        let uid = api.seed(&obj)["metadata"]["uid"].clone();
        let owner_ref = json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                               "controller": true, "blockOwnerDeletion": true});
        refs.insert((kind.to_string(), name.to_string()), owner_ref);
    };
    let reference = |api: &str, kind: &str, name: &str| json!({"apiGroup": api_group(api), "kind": kind, "name": name});
    let finalizer = |f: &str| json!({"metadata": {"finalizers": [f]}});
    let (cp, md) = (
        format!("{CLUSTER}-control-plane"),
        format!("{CLUSTER}-md-0"),
    );
    let ms = format!("{md}-7c9f5");
    let cluster = Some(("Cluster", CLUSTER));

    let mut body = finalizer("cluster.cluster.x-k8s.io");
    body["spec"] = json!({"clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
        "controlPlaneRef": reference(CONTROL_PLANE_API, "KubeadmControlPlane", &cp),
        "infrastructureRef": reference(INFRA_API, "DockerCluster", CLUSTER)});
    add(CLUSTER_API, "Cluster", CLUSTER, None, body);
    let mut body = finalizer("dockercluster.infrastructure.cluster.x-k8s.io");
    body["spec"] = json!({"controlPlaneEndpoint": {"host": "172.18.0.3", "port": 6443}});
    add(INFRA_API, "DockerCluster", CLUSTER, cluster, body);
    for name in [&cp, &md] {
        let body = json!({"spec": {"template": {"spec": {"extraMounts": []}}}});
        add(INFRA_API, "DockerMachineTemplate", name, cluster, body);
    }
    let join = json!({"nodeRegistration": {"kubeletExtraArgs": [{"name": "eviction-hard", "value": "nodefs.available<0%"}]}});
    let body = json!({"spec": {"template": {"spec": {"joinConfiguration": join.clone()}}}});
    add(BOOTSTRAP_API, "KubeadmConfigTemplate", &md, cluster, body);
    let mut body = finalizer("kubeadm.controlplane.cluster.x-k8s.io");
    body["spec"] = json!({"replicas": 1, "version": "v1.34.0", "machineTemplate": {"spec": {
        "infrastructureRef": reference(INFRA_API, "DockerMachineTemplate", &cp)}}});
    add(CONTROL_PLANE_API, "KubeadmControlPlane", &cp, cluster, body);
    let template = json!({"clusterName": CLUSTER, "version": "v1.34.0",
        "bootstrap": {"configRef": reference(BOOTSTRAP_API, "KubeadmConfigTemplate", &md)},
        "infrastructureRef": reference(INFRA_API, "DockerMachineTemplate", &md)});
    let body = json!({"spec": {"clusterName": CLUSTER, "replicas": 2, "template": {"spec": template.clone()}}});
    add(CLUSTER_API, "MachineDeployment", &md, cluster, body);
    let body =
        json!({"spec": {"clusterName": CLUSTER, "replicas": 2, "template": {"spec": template}}});
    add(
        CLUSTER_API,
        "MachineSet",
        &ms,
        Some(("MachineDeployment", &md)),
        body,
    );
    // The cluster's own Secrets: KCP's, and one without owners (soft-owned by its name).
    let kcp = Some(("KubeadmControlPlane", cp.as_str()));
    for (suffix, owner) in [
        ("kubeconfig", kcp),
        ("ca", kcp),
        ("etcd", kcp),
        ("sa", kcp),
        ("proxy", None),
    ] {
        let body = json!({"type": "cluster.x-k8s.io/secret",
                          "data": {"value": b64(&format!("{suffix} of {CLUSTER}"))}});
        add("v1", "Secret", &format!("{CLUSTER}-{suffix}"), owner, body);
    }
    // Each Machine with its infrastructure machine, bootstrap config and bootstrap data.
    for (machine, owner) in [
        (format!("{cp}-x2k4p"), ("KubeadmControlPlane", cp.as_str())),
        (format!("{ms}-q8fzl"), ("MachineSet", ms.as_str())),
        (format!("{ms}-w7vd2"), ("MachineSet", ms.as_str())),
    ] {
        let mut body = finalizer("machine.cluster.x-k8s.io");
        body["spec"] = json!({"clusterName": CLUSTER, "version": "v1.34.0",
            "bootstrap": {"configRef": reference(BOOTSTRAP_API, "KubeadmConfig", &machine),
                          "dataSecretName": machine},
            "infrastructureRef": reference(INFRA_API, "DockerMachine", &machine)});
        add(CLUSTER_API, "Machine", &machine, Some(owner), body);
        let of_machine = Some(("Machine", machine.as_str()));
        let mut body = finalizer("dockermachine.infrastructure.cluster.x-k8s.io");
        body["spec"] = json!({"providerID": format!("docker:////{machine}")});
        add(INFRA_API, "DockerMachine", &machine, of_machine, body);
        let body = json!({"spec": {"joinConfiguration": join.clone()}});
        add(BOOTSTRAP_API, "KubeadmConfig", &machine, of_machine, body);
        let body = json!({"type": "cluster.x-k8s.io/secret",
                          "data": {"value": b64("#cloud-config"), "format": b64("cloud-config")}});
        add(
            "v1",
            "Secret",
            &machine,
            Some(("KubeadmConfig", &machine)),
            body,
        );
    }
    let body =
        json!({"metadata": {"labels": {MOVE_LABEL: ""}}, "data": {"password": b64("hunter2")}});
    add("v1", "Secret", "cloud-credentials", None, body);
    let body = json!({"metadata": {"labels": null}, "data": {"note": "not the cluster's"}});
    add("v1", "ConfigMap", STAYS, None, body);
}

/// Plays the controllers on `api`'s side: the statuses a move's checks read (a move does not
/// copy status; the target's controllers rebuild it).
fn provision(api: &MemoryApi) {
    for obj in api.objects() {
        let status = match obj["kind"].as_str() {
            _ if api_group(obj["apiVersion"].as_str().unwrap_or_default())
                != "cluster.x-k8s.io" =>
            {
                continue;
            }
            Some("Cluster") => json!({"initialization": {"infrastructureProvisioned": true,
                                                         "controlPlaneInitialized": true},
                                      "conditions": [{"type": "ControlPlaneInitialized", "status": "True"}]}),
            Some("Machine") => {
                json!({"nodeRef": {"name": obj["metadata"]["name"]}, "phase": "Running"})
            }
            _ => continue,
        };
        api.patch_status(&obj, &status);
    }
}

/// What a fault hook's panic carries, so `run` tells the crash from a failed assertion.
struct Crash(Step);

/// Keeps the process's panic hook quiet about [`Crash`] panics (they are caught, and printing
/// them, with a backtrace under `RUST_BACKTRACE`, is most of the table's time); every other
/// panic goes to the hook that was there before.
fn quiet_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Crash>() {
                previous(info);
            }
        }));
    });
}

/// One move of CLUSTER from `from` to `to`, crashing right after `crash_after` when given:
/// `Err(step)` when it crashed there. A move that fails fails the test.
async fn run(
    from: &MemoryApi,
    to: &MemoryApi,
    direction: Direction,
    crash_after: Option<Step>,
    what: &str,
) -> Result<MoveReport, Step> {
    let after_step = crash_after.map(|at| {
        Arc::new(move |step: Step| {
            if step == at {
                std::panic::panic_any(Crash(step));
            }
        }) as AfterStep
    });
    let mover = Mover {
        source: from,
        target: to,
        direction,
        cluster: CLUSTER,
        opts: MoveOptions {
            timeout: Duration::from_secs(5),
            progress: Arc::new(|_, _| {}),
            after_step,
        },
    };
    match AssertUnwindSafe(mover.run()).catch_unwind().await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => panic!("{what}: the move failed: {}", crate::errors::chain(&e)),
        Err(panic) => match panic.downcast::<Crash>() {
            Ok(crash) => Err(crash.0),
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A clean run.
    None,
    /// A run killed right after this step, then a run that resumes.
    CrashAfter(Step),
    /// A finished move, run again: nothing to do.
    Again,
}

#[derive(Debug)]
struct Case {
    direction: Direction,
    fault: Fault,
}

fn table() -> Vec<Case> {
    let faults = || {
        [Fault::None, Fault::Again]
            .into_iter()
            .chain(Step::ALL.map(Fault::CrashAfter))
    };
    [Direction::Forward, Direction::Reverse]
        .into_iter()
        .flat_map(|direction| faults().map(move |fault| Case { direction, fault }))
        .collect()
}

/// The Cluster's journal on `api`: `None` without a Cluster, `Some(None)` when it has none.
fn journal(api: &MemoryApi) -> Option<Option<Journal>> {
    let key = ObjectKey::of(&cluster_ref(CLUSTER));
    let cluster = api
        .objects()
        .into_iter()
        .find(|o| ObjectKey::of(o) == key)?;
    Some(Journal::of(&cluster).expect("a readable journal"))
}

/// The journal where the mover keeps it after `step`: on the source Cluster until the
/// hand-over, then on the target's, then nowhere.
fn assert_journal(from: &MemoryApi, to: &MemoryApi, direction: Direction, step: Step, what: &str) {
    let at = Some(Journal { direction, step });
    if step < Step::HandOver {
        assert_eq!(journal(from), Some(at), "{what}: the source's journal");
        assert_eq!(
            journal(to).flatten(),
            None,
            "{what}: the target has no journal yet"
        );
    } else if step < Step::Finish {
        assert_eq!(journal(to), Some(at), "{what}: the target's journal");
    } else {
        assert_eq!(journal(from), None, "{what}: the source Cluster is gone");
        assert_eq!(journal(to), Some(None), "{what}: the journal is closed");
    }
}

/// Every object of `before` (the source's, before the move) is in `to` and none in `from`,
/// owned by the same owners through their uids in `to`, with its content; the Cluster is
/// unpaused and its journal closed.
async fn assert_moved(
    from: &MemoryApi,
    to: &MemoryApi,
    before: &BTreeMap<ObjectKey, Value>,
    what: &str,
) {
    let after = discover(to, CLUSTER)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: no Cluster in the target"))
        .objects;
    let keys =
        |m: &BTreeMap<ObjectKey, Value>| m.keys().map(ObjectKey::to_string).collect::<Vec<_>>();
    assert_eq!(
        keys(&after),
        keys(before),
        "{what}: the target holds the moved objects"
    );
    let left: Vec<String> = from
        .objects()
        .iter()
        .map(ObjectKey::of)
        .filter(|k| before.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    assert!(left.is_empty(), "{what}: left in the source: {left:?}");
    let owners = |o: &Value| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let names = |o: &Value| {
        owners(o)
            .iter()
            .map(|r| format!("{}/{}", r["kind"], r["name"]))
            .collect::<Vec<_>>()
    };
    for (key, moved) in &after {
        let old = &before[key];
        assert_ne!(
            moved["metadata"]["uid"], old["metadata"]["uid"],
            "{what}: {key}'s uid"
        );
        assert_eq!(names(moved), names(old), "{what}: {key}'s owners");
        for owner in owners(moved) {
            let uid = &after[&owner_key(&owner, &key.namespace)]["metadata"]["uid"];
            assert_eq!(
                &owner["uid"], uid,
                "{what}: {key}'s owner {} by its target uid",
                owner["name"]
            );
        }
        for field in [
            "/spec",
            "/data",
            "/type",
            "/metadata/labels",
            "/metadata/finalizers",
        ] {
            assert_eq!(
                moved.pointer(field),
                old.pointer(field),
                "{what}: {key} {field}"
            );
        }
        let managers: Vec<&str> = moved["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            !managers.contains(&MOVE_MANAGER),
            "{what}: {key} is owned by the mover: {managers:?}"
        );
        let annotations = &moved["metadata"]["annotations"];
        for annotation in [JOURNAL_ANNOTATION, DELETE_FOR_MOVE_ANNOTATION] {
            assert!(
                annotations.get(annotation).is_none(),
                "{what}: {key} carries {annotation}"
            );
        }
    }
    let cluster = &after[&ObjectKey::of(&cluster_ref(CLUSTER))];
    assert_ne!(
        cluster["spec"]["paused"], true,
        "{what}: the Cluster is left paused"
    );
}

/// Runs `case` on copies of its direction's starting point: (management, workload).
async fn run_case(case: &Case, (management, workload): &(MemoryApi, MemoryApi)) {
    let what = format!("{} move, {:?}", case.direction.as_str(), case.fault);
    let (management, workload) = (management.clone(), workload.clone());
    let (from, to) = match case.direction {
        Direction::Forward => (&management, &workload),
        Direction::Reverse => (&workload, &management),
    };
    let discovered = discover(from, CLUSTER).await.unwrap().expect("the Cluster");
    let before = discovered.objects;
    // The whole graph is found: everything in the namespace but the ConfigMap nothing owns.
    let in_namespace: Vec<String> = from
        .objects()
        .iter()
        .filter(|o| o["metadata"]["namespace"] == CLUSTER && o["metadata"]["name"] != STAYS)
        .map(|o| ObjectKey::of(o).to_string())
        .collect();
    assert_eq!(
        before.keys().map(ObjectKey::to_string).collect::<Vec<_>>(),
        in_namespace,
        "{what}"
    );
    let (all, deepest) = (
        before.len(),
        discovered.sequence.groups.last().map_or(0, Vec::len),
    );

    let rerun = || run(from, to, case.direction, None, &what);
    let report = match case.fault {
        Fault::None => rerun().await,
        Fault::Again => {
            rerun().await.expect("no fault hook");
            let revisions = (from.revision(), to.revision());
            let again = rerun().await;
            assert_eq!(
                (from.revision(), to.revision()),
                revisions,
                "{what}: wrote again"
            );
            again
        }
        Fault::CrashAfter(step) => {
            let crashed = run(from, to, case.direction, Some(step), &what).await;
            assert_eq!(crashed.err(), Some(step), "{what}: the fault fires");
            assert_journal(from, to, case.direction, step, &what);
            rerun().await
        }
    }
    .expect("no fault hook");

    // What the last run did: (resumed_after, created, deleted, already_moved).
    let expected = match case.fault {
        Fault::None => (None, all, all, false),
        Fault::Again | Fault::CrashAfter(Step::Finish) => (None, 0, 0, true),
        // Before the hand-over, a resume creates everything again (create or replace).
        Fault::CrashAfter(step) if step < Step::HandOver => (Some(step), all, all, false),
        Fault::CrashAfter(step) => {
            let deleted = match step {
                Step::HandOver => all,
                Step::DeleteFirstGroup => all - deepest,
                _ => 0,
            };
            (Some(step), 0, deleted, false)
        }
    };
    let resumed = report
        .resumed_after
        .as_deref()
        .map(|s| Step::parse(s).expect("a step"));
    let got = (
        resumed,
        report.created,
        report.deleted,
        report.already_moved,
    );
    assert_eq!(
        got, expected,
        "{what}: (resumed_after, created, deleted, already_moved)"
    );

    assert_moved(from, to, &before, &what).await;
    let kubeconfig = ObjectKey::of(&kubeconfig_secret(CLUSTER, CLUSTER));
    let kept = management
        .get(&kubeconfig_secret(CLUSTER, AGENT_NAMESPACE))
        .await
        .unwrap();
    assert_eq!(
        kept.map(|k| k["data"]["value"].clone()),
        Some(before[&kubeconfig].pointer("/data/value").cloned().unwrap()),
        "{what}: the management cluster keeps the workload kubeconfig"
    );
    let stays = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": STAYS, "namespace": CLUSTER}});
    assert!(
        management.get(&stays).await.unwrap().is_some(),
        "{what}: {STAYS} stays"
    );
    assert!(
        workload.get(&stays).await.unwrap().is_none(),
        "{what}: {STAYS} moved"
    );
    let crd_names = |crds: Vec<Value>| -> BTreeSet<String> {
        let names = crds
            .into_iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition");
        names
            .map(|c| {
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let labelled: Vec<Value> = crds().into_iter().filter(is_labelled).collect();
    assert_eq!(
        crd_names(workload.objects()),
        crd_names(labelled),
        "{what}: the workload's CRDs"
    );
}

#[tokio::test]
async fn a_move_crashed_after_any_step_resumes_to_the_same_end_both_ways() {
    quiet_crashes();
    let start = Instant::now();
    // Each direction's starting point, built once: the provisioned cluster in the management
    // cluster and an empty workload cluster; then both as a forward move leaves them, with the
    // workload's controllers having provisioned it again.
    let forward = (MemoryApi::new(), MemoryApi::new());
    seed_cluster(&forward.0);
    provision(&forward.0);
    let reverse = (forward.0.clone(), forward.1.clone());
    let moved = run(
        &reverse.0,
        &reverse.1,
        Direction::Forward,
        None,
        "the first move",
    )
    .await;
    moved.expect("no fault hook");
    provision(&reverse.1);

    let table = table();
    assert_eq!(table.len(), 2 * (Step::ALL.len() + 2));
    for case in &table {
        let sides = match case.direction {
            Direction::Forward => &forward,
            Direction::Reverse => &reverse,
        };
        run_case(case, sides).await;
    }
    eprintln!(
        "mover table: {} cases in {:?}",
        table.len(),
        start.elapsed()
    );
}

/// clusterctl's `Provider` inventory object of the core provider at `version`.
fn core_provider(version: &str) -> Value {
    json!({"apiVersion": "clusterctl.cluster.x-k8s.io/v1alpha3", "kind": "Provider",
           "metadata": {"name": "cluster-api", "namespace": "capi-system",
                        "labels": {"cluster.x-k8s.io/provider": "cluster-api"}},
           "providerName": "cluster-api", "type": "CoreProvider", "version": version})
}

#[tokio::test]
async fn a_target_whose_providers_are_older_is_refused_before_anything_moves() {
    let (management, workload) = (MemoryApi::new(), MemoryApi::new());
    seed_cluster(&management);
    provision(&management);
    for api in [&management, &workload] {
        api.seed(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capi-system"}}),
        );
    }
    management.seed(&core_provider("v1.14.2"));
    for crd in crds()
        .iter()
        .filter(|c| c["spec"]["names"]["kind"] == "Provider")
    {
        workload.seed(crd);
    }
    workload.seed(&core_provider("v1.13.0"));
    let mover = Mover {
        source: &management,
        target: &workload,
        direction: Direction::Forward,
        cluster: CLUSTER,
        opts: MoveOptions {
            timeout: Duration::from_secs(5),
            progress: Arc::new(|_, _| {}),
            after_step: None,
        },
    };
    let err = mover.run().await.expect_err("an older target is refused");
    let text = crate::errors::chain(&err);
    assert!(
        text.contains("provider cluster-api in the target is older than in the source (source: v1.14.2, target: v1.13.0"),
        "{text}"
    );
    // Nothing was installed or moved: the target still has only what it had.
    assert!(
        workload
            .get(&cluster_ref(CLUSTER))
            .await
            .is_err_and(|e| e.is_unknown_kind())
    );
    let source = management
        .get(&cluster_ref(CLUSTER))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(source["spec"]["paused"], true, "{source:#}");
}
