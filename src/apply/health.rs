//! Health of a live object, kstatus-style: is it Ready, still InProgress, or Failed for good?
//!
//! Pure functions over the object as the API server returns it (`serde_json::Value`); the waits
//! that poll them live elsewhere. Every InProgress/Failed carries a sentence naming the field that
//! decided it, so a timeout can say which object is unready and why (DESIGN.md §3-4,
//! CAPI-NOTES.md "Readiness signals").
//!
//! Two rules hold throughout:
//! - A controller that has not yet observed the latest spec (`status.observedGeneration` behind
//!   `metadata.generation`) makes its status stale, so that check comes first: a `Ready=True` from
//!   an older generation is not Ready. A condition carrying its own `observedGeneration` older
//!   than the object's generation is stale in the same way and never counts as True.
//! - Missing counters count as 0 and a missing `spec.replicas` as 1 (the API server's default).

use serde_json::Value;

use crate::render::kinds::{api_group, object_ref, str_at};

/// The health of one live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Reconciled and serving: dependents may proceed.
    Ready,
    /// Not there yet; the string says why, naming the field (e.g. "2 of 3 replicas updated").
    InProgress(String),
    /// Will not get there without a change (e.g. a failed Job, a Deployment past its deadline).
    Failed(String),
}

impl Health {
    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready)
    }
}

/// The health of `obj`, dispatched on its apiVersion group and kind.
///
/// Cluster API kinds are judged by their v1beta2 status; other versions of them (whose status
/// has another shape) get the generic rule.
pub fn health(obj: &Value) -> Health {
    let api_version = str_at(obj, "/apiVersion").unwrap_or("");
    let group = api_group(api_version);
    let version = api_version.rsplit('/').next().unwrap_or("");
    match (group, str_at(obj, "/kind").unwrap_or("")) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        ("", "Namespace") => namespace(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("", "Pod") => pod(obj),
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("batch", "Job") => job(obj),
        ("controlplane.cluster.x-k8s.io", "KubeadmControlPlane") if version == "v1beta2" => {
            kubeadm_control_plane(obj)
        }
        ("cluster.x-k8s.io", "MachineDeployment") if version == "v1beta2" => {
            machine_deployment(obj)
        }
        ("cluster.x-k8s.io", "Cluster") if version == "v1beta2" => cluster(obj),
        ("cluster.x-k8s.io", "Machine") if version == "v1beta2" => machine(obj),
        _ => generic(obj),
    }
}

/// `Kind/ns/name: why` when `obj` is not Ready, `None` when it is.
pub fn unready_reason(obj: &Value) -> Option<String> {
    match health(obj) {
        Health::Ready => None,
        Health::InProgress(why) | Health::Failed(why) => {
            Some(format!("{}: {why}", object_ref(obj)))
        }
    }
}

/// Whether a Cluster's control plane is initialized: `status.initialization.controlPlaneInitialized`
/// or the `ControlPlaneInitialized` condition (either suffices; neither flips back).
pub fn control_plane_initialized(cluster: &Value) -> bool {
    cluster
        .pointer("/status/initialization/controlPlaneInitialized")
        .and_then(Value::as_bool)
        == Some(true)
        || cond_true(cluster, "ControlPlaneInitialized")
}

// ---------------------------------------------------------------------------------------------
// Field access

fn int_at(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

/// A counter: absent means 0 (the API server omits zero counters).
fn count(obj: &Value, pointer: &str) -> i64 {
    int_at(obj, pointer).unwrap_or(0)
}

/// `spec.replicas`, defaulting to 1.
fn spec_replicas(obj: &Value) -> i64 {
    int_at(obj, "/spec/replicas").unwrap_or(1)
}

/// InProgress reason when the controller has not observed the current generation. `strict`: a
/// missing `status.observedGeneration` also counts as not observed (for kinds whose controller
/// always sets it); otherwise it is ignored (CRs without a status controller).
fn generation_lag(obj: &Value, strict: bool) -> Option<String> {
    let generation = int_at(obj, "/metadata/generation")?;
    match int_at(obj, "/status/observedGeneration") {
        Some(observed) if observed < generation => Some(format!(
            "status.observedGeneration {observed} is behind metadata.generation {generation}"
        )),
        None if strict => Some(format!(
            "status.observedGeneration not set yet (metadata.generation {generation})"
        )),
        _ => None,
    }
}

struct Cond<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
    /// The condition's own observedGeneration is behind metadata.generation.
    stale: bool,
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<Cond<'a>> {
    let c = obj
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))?;
    let observed = c.get("observedGeneration").and_then(Value::as_i64);
    let generation = int_at(obj, "/metadata/generation");
    Some(Cond {
        status: str_at(c, "/status").unwrap_or(""),
        reason: str_at(c, "/reason").unwrap_or(""),
        message: str_at(c, "/message").unwrap_or(""),
        stale: matches!((observed, generation), (Some(o), Some(g)) if o < g),
    })
}

/// The condition is present, True, and not stale.
fn cond_true(obj: &Value, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c.status == "True" && !c.stale)
}

/// The condition is present with this status (staleness ignored: for "bad" signals).
fn cond_is(obj: &Value, ty: &str, status: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c.status == status)
}

/// "condition Ready is False (Reason: message)", or "condition Ready not set".
fn describe_cond(obj: &Value, ty: &str) -> String {
    let Some(c) = condition(obj, ty) else {
        return format!("condition {ty} not set");
    };
    let status = if c.status.is_empty() {
        "Unknown"
    } else {
        c.status
    };
    let mut s = format!("condition {ty} is {status}");
    if c.stale {
        s.push_str(" but stale (its observedGeneration is behind metadata.generation)");
    }
    let detail = match (c.reason, c.message) {
        ("", "") => String::new(),
        (r, "") => r.to_string(),
        ("", m) => m.to_string(),
        (r, m) => format!("{r}: {m}"),
    };
    if !detail.is_empty() {
        s.push_str(&format!(" ({detail})"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Kubernetes built-ins

fn crd(obj: &Value) -> Health {
    if cond_is(obj, "NamesAccepted", "False") {
        return Health::Failed(describe_cond(obj, "NamesAccepted"));
    }
    if cond_true(obj, "Established") {
        Health::Ready
    } else {
        Health::InProgress(describe_cond(obj, "Established"))
    }
}

fn namespace(obj: &Value) -> Health {
    match str_at(obj, "/status/phase").unwrap_or("") {
        "Active" => Health::Ready,
        "" => Health::InProgress("status.phase not set yet (want Active)".into()),
        phase => Health::InProgress(format!("status.phase is {phase} (want Active)")),
    }
}

fn pvc(obj: &Value) -> Health {
    match str_at(obj, "/status/phase").unwrap_or("") {
        "Bound" => Health::Ready,
        "Lost" => Health::Failed("status.phase is Lost (its PersistentVolume is gone)".into()),
        "" => Health::InProgress("status.phase not set yet (want Bound)".into()),
        phase => Health::InProgress(format!("status.phase is {phase} (want Bound)")),
    }
}

fn service(obj: &Value) -> Health {
    if str_at(obj, "/spec/type") != Some("LoadBalancer") {
        return Health::Ready;
    }
    let has_ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_ingress {
        Health::Ready
    } else {
        Health::InProgress("status.loadBalancer.ingress is empty (no external address yet)".into())
    }
}

fn pod(obj: &Value) -> Health {
    match str_at(obj, "/status/phase").unwrap_or("") {
        "Succeeded" => return Health::Ready,
        "Failed" => {
            let reason = str_at(obj, "/status/reason").unwrap_or("");
            let message = str_at(obj, "/status/message").unwrap_or("");
            let detail = [reason, message]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ");
            return Health::Failed(if detail.is_empty() {
                "status.phase is Failed".into()
            } else {
                format!("status.phase is Failed ({detail})")
            });
        }
        _ => {}
    }
    if cond_true(obj, "Ready") {
        Health::Ready
    } else {
        Health::InProgress(describe_cond(obj, "Ready"))
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(why) = generation_lag(obj, true) {
        return Health::InProgress(why);
    }
    if let Some(c) = condition(obj, "Progressing")
        && c.reason == "ProgressDeadlineExceeded"
    {
        return Health::Failed(describe_cond(obj, "Progressing"));
    }
    let want = spec_replicas(obj);
    let total = count(obj, "/status/replicas");
    let updated = count(obj, "/status/updatedReplicas");
    let available = count(obj, "/status/availableReplicas");
    let unavailable = count(obj, "/status/unavailableReplicas");
    if updated < want {
        return Health::InProgress(format!(
            "{updated} of {want} replicas updated (status.updatedReplicas)"
        ));
    }
    if total > updated {
        return Health::InProgress(format!(
            "{} old replicas pending termination (status.replicas {total}, status.updatedReplicas {updated})",
            total - updated
        ));
    }
    if total != want {
        return Health::InProgress(format!(
            "status.replicas is {total}, spec.replicas is {want}"
        ));
    }
    if available < want {
        // Why, when the Available condition says more than that it is False (a pod that cannot
        // be scheduled, or whose volumes are missing).
        let why = condition(obj, "Available")
            .filter(|c| c.status == "False" && !c.message.is_empty())
            .map(|c| format!(": {}", c.message))
            .unwrap_or_default();
        return Health::InProgress(format!(
            "{available} of {want} replicas available (status.availableReplicas){why}"
        ));
    }
    if unavailable > 0 {
        return Health::InProgress(format!(
            "{unavailable} replicas unavailable (status.unavailableReplicas)"
        ));
    }
    Health::Ready
}

fn statefulset(obj: &Value) -> Health {
    if let Some(why) = generation_lag(obj, true) {
        return Health::InProgress(why);
    }
    let want = spec_replicas(obj);
    let total = count(obj, "/status/replicas");
    let ready = count(obj, "/status/readyReplicas");
    let updated = count(obj, "/status/updatedReplicas");
    if total != want {
        return Health::InProgress(format!(
            "status.replicas is {total}, spec.replicas is {want}"
        ));
    }
    if ready < want {
        return Health::InProgress(format!(
            "{ready} of {want} replicas ready (status.readyReplicas)"
        ));
    }
    let strategy = match str_at(obj, "/spec/updateStrategy/type").unwrap_or("") {
        "" => "RollingUpdate",
        s => s,
    };
    if strategy != "RollingUpdate" {
        return Health::Ready;
    }
    let partition = count(obj, "/spec/updateStrategy/rollingUpdate/partition");
    if partition > 0 {
        // A partitioned rollout only updates ordinals >= partition; the revisions stay apart.
        let target = (want - partition).max(0);
        if updated < target {
            return Health::InProgress(format!(
                "{updated} of {target} replicas at or above partition {partition} updated (status.updatedReplicas)"
            ));
        }
        return Health::Ready;
    }
    if updated < want {
        return Health::InProgress(format!(
            "{updated} of {want} replicas updated (status.updatedReplicas)"
        ));
    }
    let current = str_at(obj, "/status/currentRevision").unwrap_or("");
    let update = str_at(obj, "/status/updateRevision").unwrap_or("");
    if current != update {
        return Health::InProgress(format!(
            "status.currentRevision {current:?} is not status.updateRevision {update:?}"
        ));
    }
    Health::Ready
}

fn daemonset(obj: &Value) -> Health {
    if let Some(why) = generation_lag(obj, true) {
        return Health::InProgress(why);
    }
    let desired = count(obj, "/status/desiredNumberScheduled");
    let updated = count(obj, "/status/updatedNumberScheduled");
    let ready = count(obj, "/status/numberReady");
    let available = count(obj, "/status/numberAvailable");
    let rolling = matches!(
        str_at(obj, "/spec/updateStrategy/type").unwrap_or(""),
        "" | "RollingUpdate"
    );
    if rolling && updated < desired {
        return Health::InProgress(format!(
            "{updated} of {desired} scheduled pods updated (status.updatedNumberScheduled)"
        ));
    }
    if ready < desired {
        return Health::InProgress(format!(
            "{ready} of {desired} scheduled pods ready (status.numberReady)"
        ));
    }
    if available < desired {
        return Health::InProgress(format!(
            "{available} of {desired} scheduled pods available (status.numberAvailable)"
        ));
    }
    Health::Ready
}

fn job(obj: &Value) -> Health {
    for bad in ["Failed", "FailureTarget"] {
        if cond_is(obj, bad, "True") {
            return Health::Failed(format!("Job failed: {}", describe_cond(obj, bad)));
        }
    }
    if cond_is(obj, "Complete", "True") {
        return Health::Ready;
    }
    if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Health::InProgress("spec.suspend is true".into());
    }
    let succeeded = count(obj, "/status/succeeded");
    let completions = int_at(obj, "/spec/completions").unwrap_or(1);
    Health::InProgress(format!(
        "condition Complete not True ({succeeded} of {completions} completions succeeded, status.succeeded)"
    ))
}

// ---------------------------------------------------------------------------------------------
// Cluster API v1beta2

/// The v1beta2 rollout counters: spec.replicas == status.{replicas, upToDateReplicas,
/// readyReplicas, availableReplicas}.
fn capi_counters(obj: &Value) -> Option<String> {
    let want = spec_replicas(obj);
    let total = count(obj, "/status/replicas");
    if total != want {
        return Some(format!(
            "status.replicas is {total}, spec.replicas is {want}"
        ));
    }
    for (field, what) in [
        ("upToDateReplicas", "up to date"),
        ("readyReplicas", "ready"),
        ("availableReplicas", "available"),
    ] {
        let n = count(obj, &format!("/status/{field}"));
        if n != want {
            return Some(format!("{n} of {want} replicas {what} (status.{field})"));
        }
    }
    None
}

/// The first of the rollout conditions that is True.
fn capi_rolling(obj: &Value) -> Option<String> {
    ["RollingOut", "ScalingUp", "ScalingDown"]
        .into_iter()
        .find(|ty| cond_is(obj, ty, "True"))
        .map(|ty| describe_cond(obj, ty))
}

fn kubeadm_control_plane(obj: &Value) -> Health {
    if let Some(why) = generation_lag(obj, true)
        .or_else(|| capi_counters(obj))
        .or_else(|| capi_rolling(obj))
    {
        return Health::InProgress(why);
    }
    if !cond_true(obj, "Available") {
        return Health::InProgress(describe_cond(obj, "Available"));
    }
    Health::Ready
}

fn machine_deployment(obj: &Value) -> Health {
    if str_at(obj, "/status/phase") == Some("Failed") {
        return Health::Failed("status.phase is Failed".into());
    }
    match generation_lag(obj, true)
        .or_else(|| capi_counters(obj))
        .or_else(|| capi_rolling(obj))
    {
        Some(why) => Health::InProgress(why),
        None => Health::Ready,
    }
}

fn cluster(obj: &Value) -> Health {
    match str_at(obj, "/status/phase").unwrap_or("") {
        "Failed" => return Health::Failed("status.phase is Failed".into()),
        "Provisioned" => {}
        "" => return Health::InProgress("status.phase not set yet (want Provisioned)".into()),
        phase => return Health::InProgress(format!("status.phase is {phase} (want Provisioned)")),
    }
    if let Some(why) = generation_lag(obj, false) {
        return Health::InProgress(why);
    }
    if !cond_true(obj, "Available") {
        return Health::InProgress(describe_cond(obj, "Available"));
    }
    Health::Ready
}

fn machine(obj: &Value) -> Health {
    match str_at(obj, "/status/phase").unwrap_or("") {
        "Failed" => return Health::Failed("status.phase is Failed".into()),
        "Running" => {}
        "" => return Health::InProgress("status.phase not set yet (want Running)".into()),
        phase => return Health::InProgress(format!("status.phase is {phase} (want Running)")),
    }
    if str_at(obj, "/status/nodeRef/name").unwrap_or("").is_empty() {
        return Health::InProgress("status.nodeRef not set yet (no Node joined)".into());
    }
    Health::Ready
}

// ---------------------------------------------------------------------------------------------
// Everything else

fn generic(obj: &Value) -> Health {
    if let Some(why) = generation_lag(obj, false) {
        return Health::InProgress(why);
    }
    if condition(obj, "Ready").is_some() && !cond_true(obj, "Ready") {
        return Health::InProgress(describe_cond(obj, "Ready"));
    }
    Health::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a case expects: the variant, and for InProgress/Failed a substring of the reason.
    #[derive(Debug)]
    enum Want {
        Ready,
        InProgress(&'static str),
        Failed(&'static str),
    }

    fn matches(got: &Health, want: &Want) -> bool {
        match (got, want) {
            (Health::Ready, Want::Ready) => true,
            (Health::InProgress(g), Want::InProgress(w)) | (Health::Failed(g), Want::Failed(w)) => {
                g.contains(w)
            }
            _ => false,
        }
    }

    fn check(cases: Vec<(&str, Value, Want)>) {
        assert!(!cases.is_empty());
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, obj, want)| {
                let got = health(obj);
                (!matches(&got, want)).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn cond(ty: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": ty, "status": status, "reason": reason, "message": message})
    }

    #[test]
    fn crd() {
        let crd = |conditions: Vec<Value>| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "machines.cluster.x-k8s.io", "generation": 1},
                   "status": {"conditions": conditions}})
        };
        check(vec![
            (
                "established",
                crd(vec![
                    cond("NamesAccepted", "True", "NoConflicts", ""),
                    cond("Established", "True", "InitialNamesAccepted", ""),
                ]),
                Want::Ready,
            ),
            (
                "not yet established",
                crd(vec![
                    cond("NamesAccepted", "True", "NoConflicts", ""),
                    cond(
                        "Established",
                        "False",
                        "Installing",
                        "the initial names have not been accepted",
                    ),
                ]),
                Want::InProgress("condition Established is False (Installing"),
            ),
            (
                "no status yet",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                       "metadata": {"name": "x.example.com"}}),
                Want::InProgress("condition Established not set"),
            ),
            (
                "names conflict",
                crd(vec![
                    cond(
                        "NamesAccepted",
                        "False",
                        "PluralConflict",
                        "\"machines\" is already in use",
                    ),
                    cond("Established", "False", "NotAccepted", ""),
                ]),
                Want::Failed("condition NamesAccepted is False (PluralConflict"),
            ),
        ]);
    }

    #[test]
    fn namespace() {
        let ns = |phase: &str| {
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capi-system"},
                   "status": {"phase": phase}})
        };
        check(vec![
            ("active", ns("Active"), Want::Ready),
            (
                "terminating",
                ns("Terminating"),
                Want::InProgress("status.phase is Terminating"),
            ),
            (
                "no status",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
                Want::InProgress("status.phase not set"),
            ),
        ]);
    }

    fn deploy(spec_replicas: Option<i64>, generation: i64, status: Value) -> Value {
        let mut spec = json!({});
        if let Some(r) = spec_replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "coredns", "namespace": "kube-system", "generation": generation},
               "spec": spec, "status": status})
    }

    #[test]
    fn deployment() {
        check(vec![
            (
                "rolled out",
                deploy(
                    Some(3),
                    2,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                          "readyReplicas": 3, "availableReplicas": 3}),
                ),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1, rolled out",
                deploy(
                    None,
                    1,
                    json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                       "availableReplicas": 1}),
                ),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1, nothing available",
                deploy(
                    None,
                    1,
                    json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                       "unavailableReplicas": 1}),
                ),
                Want::InProgress("0 of 1 replicas available"),
            ),
            (
                "scaled to zero",
                deploy(Some(0), 3, json!({"observedGeneration": 3})),
                Want::Ready,
            ),
            (
                "observedGeneration lagging, counters look done",
                deploy(
                    Some(3),
                    3,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                          "availableReplicas": 3}),
                ),
                Want::InProgress("status.observedGeneration 2 is behind metadata.generation 3"),
            ),
            (
                "no status yet",
                deploy(Some(1), 1, json!({})),
                Want::InProgress("status.observedGeneration not set"),
            ),
            (
                "partially rolled out",
                deploy(
                    Some(3),
                    2,
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2,
                                          "availableReplicas": 3, "unavailableReplicas": 1}),
                ),
                Want::InProgress("2 of 3 replicas updated"),
            ),
            (
                "old replica still terminating",
                deploy(
                    Some(3),
                    2,
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
                                          "availableReplicas": 4}),
                ),
                Want::InProgress("1 old replicas pending termination"),
            ),
            (
                "updated but one unavailable",
                deploy(
                    Some(3),
                    2,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                          "availableReplicas": 3, "unavailableReplicas": 1}),
                ),
                Want::InProgress("1 replicas unavailable"),
            ),
            (
                "progress deadline exceeded",
                deploy(
                    Some(3),
                    2,
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                    "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded",
                                        "ReplicaSet \"coredns-abc\" has timed out progressing.")]}),
                ),
                Want::Failed("ProgressDeadlineExceeded: ReplicaSet"),
            ),
        ]);
    }

    fn sts(spec: Value, generation: i64, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "etcd", "namespace": "db", "generation": generation},
               "spec": spec, "status": status})
    }

    #[test]
    fn statefulset() {
        check(vec![
            (
                "rolled out",
                sts(
                    json!({"replicas": 3}),
                    4,
                    json!({"observedGeneration": 4, "replicas": 3,
                    "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "etcd-2", "updateRevision": "etcd-2"}),
                ),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1, not ready",
                sts(
                    json!({}),
                    1,
                    json!({"observedGeneration": 1, "replicas": 1,
                    "updatedReplicas": 1, "currentRevision": "etcd-1", "updateRevision": "etcd-1"}),
                ),
                Want::InProgress("0 of 1 replicas ready"),
            ),
            (
                "observedGeneration lagging",
                sts(
                    json!({"replicas": 3}),
                    5,
                    json!({"observedGeneration": 4, "replicas": 3,
                    "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "etcd-2", "updateRevision": "etcd-2"}),
                ),
                Want::InProgress("status.observedGeneration 4 is behind metadata.generation 5"),
            ),
            (
                "partially rolled out",
                sts(
                    json!({"replicas": 3}),
                    5,
                    json!({"observedGeneration": 5, "replicas": 3,
                    "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "etcd-2", "updateRevision": "etcd-3"}),
                ),
                Want::InProgress("1 of 3 replicas updated"),
            ),
            (
                "all updated but revision not yet promoted",
                sts(
                    json!({"replicas": 3}),
                    5,
                    json!({"observedGeneration": 5, "replicas": 3,
                    "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "etcd-2", "updateRevision": "etcd-3"}),
                ),
                Want::InProgress(
                    "status.currentRevision \"etcd-2\" is not status.updateRevision \"etcd-3\"",
                ),
            ),
            (
                "OnDelete ignores revisions",
                sts(
                    json!({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}),
                    5,
                    json!({"observedGeneration": 5,
                    "replicas": 3, "readyReplicas": 3, "updatedReplicas": 0, "currentRevision": "etcd-2", "updateRevision": "etcd-3"}),
                ),
                Want::Ready,
            ),
            (
                "partition reached",
                sts(
                    json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
                    5,
                    json!({"observedGeneration": 5, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
                           "currentRevision": "etcd-2", "updateRevision": "etcd-3"}),
                ),
                Want::Ready,
            ),
            (
                "partition not reached",
                sts(
                    json!({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 1}}}),
                    5,
                    json!({"observedGeneration": 5, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
                           "currentRevision": "etcd-2", "updateRevision": "etcd-3"}),
                ),
                Want::InProgress("1 of 2 replicas at or above partition 1 updated"),
            ),
            (
                "scaling up",
                sts(
                    json!({"replicas": 3}),
                    5,
                    json!({"observedGeneration": 5, "replicas": 2,
                    "readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "etcd-2", "updateRevision": "etcd-2"}),
                ),
                Want::InProgress("status.replicas is 2, spec.replicas is 3"),
            ),
        ]);
    }

    fn ds(generation: i64, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "kube-proxy", "namespace": "kube-system", "generation": generation},
               "spec": {}, "status": status})
    }

    #[test]
    fn daemonset() {
        check(vec![
            (
                "rolled out",
                ds(
                    2,
                    json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3}),
                ),
                Want::Ready,
            ),
            (
                "no nodes",
                ds(
                    1,
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 0}),
                ),
                Want::Ready,
            ),
            (
                "observedGeneration lagging",
                ds(
                    3,
                    json!({"observedGeneration": 2, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3}),
                ),
                Want::InProgress("status.observedGeneration 2 is behind metadata.generation 3"),
            ),
            (
                "partially rolled out",
                ds(
                    3,
                    json!({"observedGeneration": 3, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 2, "numberReady": 3, "numberAvailable": 3}),
                ),
                Want::InProgress("2 of 3 scheduled pods updated"),
            ),
            (
                "updated, one not ready",
                ds(
                    3,
                    json!({"observedGeneration": 3, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 2, "numberAvailable": 2}),
                ),
                Want::InProgress("2 of 3 scheduled pods ready (status.numberReady)"),
            ),
            (
                "ready, not yet available (minReadySeconds)",
                ds(
                    3,
                    json!({"observedGeneration": 3, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 3, "numberAvailable": 1}),
                ),
                Want::InProgress("1 of 3 scheduled pods available (status.numberAvailable)"),
            ),
        ]);
    }

    fn job(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "migrate", "namespace": "app", "generation": 1},
               "spec": spec, "status": status})
    }

    #[test]
    fn job_cases() {
        check(vec![
            (
                "complete",
                job(
                    json!({}),
                    json!({"succeeded": 1, "conditions": [
                    cond("SuccessCriteriaMet", "True", "CompletionsReached", ""),
                    cond("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")]}),
                ),
                Want::Ready,
            ),
            (
                "running",
                job(
                    json!({"completions": 3}),
                    json!({"active": 1, "succeeded": 2}),
                ),
                Want::InProgress("2 of 3 completions succeeded"),
            ),
            (
                "failed",
                job(
                    json!({}),
                    json!({"failed": 7, "conditions": [
                    cond("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                    cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]}),
                ),
                Want::Failed("Job failed: condition Failed is True (BackoffLimitExceeded"),
            ),
            (
                "failure target before Failed",
                job(
                    json!({}),
                    json!({"conditions": [
                    cond("FailureTarget", "True", "DeadlineExceeded", "Job was active longer than specified deadline")]}),
                ),
                Want::Failed("DeadlineExceeded"),
            ),
            (
                "suspended",
                job(
                    json!({"suspend": true}),
                    json!({"conditions": [cond("Suspended", "True", "JobSuspended", "")]}),
                ),
                Want::InProgress("spec.suspend is true"),
            ),
        ]);
    }

    #[test]
    fn pvc_service_pod() {
        let pvc = |phase: &str| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "data", "namespace": "db"}, "status": {"phase": phase}})
        };
        let svc = |ty: &str, status: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"},
                   "spec": {"type": ty}, "status": status})
        };
        let pod = |status: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "app"},
                   "status": status})
        };
        check(vec![
            ("pvc bound", pvc("Bound"), Want::Ready),
            (
                "pvc pending",
                pvc("Pending"),
                Want::InProgress("status.phase is Pending (want Bound)"),
            ),
            (
                "pvc lost",
                pvc("Lost"),
                Want::Failed("status.phase is Lost"),
            ),
            (
                "ClusterIP service",
                svc("ClusterIP", json!({"loadBalancer": {}})),
                Want::Ready,
            ),
            (
                "service without type is ClusterIP",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"}}),
                Want::Ready,
            ),
            (
                "LoadBalancer with ingress",
                svc(
                    "LoadBalancer",
                    json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.5", "ipMode": "VIP"}]}}),
                ),
                Want::Ready,
            ),
            (
                "LoadBalancer pending",
                svc("LoadBalancer", json!({"loadBalancer": {}})),
                Want::InProgress("status.loadBalancer.ingress is empty"),
            ),
            (
                "LoadBalancer with empty ingress list",
                svc("LoadBalancer", json!({"loadBalancer": {"ingress": []}})),
                Want::InProgress("status.loadBalancer.ingress is empty"),
            ),
            (
                "pod ready",
                pod(json!({"phase": "Running", "conditions": [cond("Ready", "True", "", "")]})),
                Want::Ready,
            ),
            (
                "pod not ready",
                pod(json!({"phase": "Running", "conditions": [
                    cond("Ready", "False", "ContainersNotReady", "containers with unready status: [app]")]})),
                Want::InProgress(
                    "condition Ready is False (ContainersNotReady: containers with unready status",
                ),
            ),
            (
                "pod completed",
                pod(
                    json!({"phase": "Succeeded", "conditions": [cond("Ready", "False", "PodCompleted", "")]}),
                ),
                Want::Ready,
            ),
            (
                "pod failed",
                pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})),
                Want::Failed("status.phase is Failed (Evicted: low on memory)"),
            ),
            (
                "pod pending, no conditions",
                pod(json!({"phase": "Pending"})),
                Want::InProgress("condition Ready not set"),
            ),
        ]);
    }

    fn kcp(spec_replicas: Option<i64>, generation: i64, status: Value) -> Value {
        let mut spec = json!({"version": "v1.34.4"});
        if let Some(r) = spec_replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
               "metadata": {"name": "c1-cp", "namespace": "fleet", "generation": generation},
               "spec": spec, "status": status})
    }

    fn rolled_out_conditions() -> Value {
        json!([
            cond("Available", "True", "Available", ""),
            cond("RollingOut", "False", "NotRollingOut", ""),
            cond("ScalingUp", "False", "NotScalingUp", ""),
            cond("ScalingDown", "False", "NotScalingDown", ""),
        ])
    }

    fn counters(
        observed: i64,
        replicas: i64,
        up_to_date: i64,
        ready: i64,
        available: i64,
    ) -> Value {
        json!({"observedGeneration": observed, "replicas": replicas, "upToDateReplicas": up_to_date,
               "readyReplicas": ready, "availableReplicas": available, "conditions": rolled_out_conditions()})
    }

    #[test]
    fn kubeadm_control_plane() {
        let mut scaling_up = counters(2, 3, 3, 3, 3);
        scaling_up["conditions"][2] = cond(
            "ScalingUp",
            "True",
            "ScalingUp",
            "Scaling up from 2 to 3 replicas",
        );
        let mut unavailable = counters(2, 3, 3, 3, 3);
        unavailable["conditions"][0] =
            cond("Available", "False", "NotAvailable", "etcd quorum lost");
        let mut stale_available = counters(2, 3, 3, 3, 3);
        stale_available["conditions"][0]["observedGeneration"] = json!(1);
        let mut v1beta1 = kcp(Some(3), 2, counters(2, 3, 3, 3, 3));
        v1beta1["apiVersion"] = json!("controlplane.cluster.x-k8s.io/v1beta1");
        v1beta1["status"]["conditions"] = json!([cond("Ready", "False", "ScalingUp", "")]);
        check(vec![
            (
                "rolled out",
                kcp(Some(3), 2, counters(2, 3, 3, 3, 3)),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1",
                kcp(None, 1, counters(1, 1, 1, 1, 1)),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1, none ready",
                kcp(None, 1, counters(1, 1, 1, 0, 0)),
                Want::InProgress("0 of 1 replicas ready (status.readyReplicas)"),
            ),
            (
                "observedGeneration lagging",
                kcp(Some(3), 3, counters(2, 3, 3, 3, 3)),
                Want::InProgress("status.observedGeneration 2 is behind metadata.generation 3"),
            ),
            (
                "scaling: fewer machines than spec",
                kcp(Some(3), 2, counters(2, 2, 2, 2, 2)),
                Want::InProgress("status.replicas is 2, spec.replicas is 3"),
            ),
            (
                "partially rolled out",
                kcp(Some(3), 2, counters(2, 3, 2, 3, 3)),
                Want::InProgress("2 of 3 replicas up to date (status.upToDateReplicas)"),
            ),
            (
                "ready but not yet available",
                kcp(Some(3), 2, counters(2, 3, 3, 3, 2)),
                Want::InProgress("2 of 3 replicas available (status.availableReplicas)"),
            ),
            (
                "ScalingUp True with counters caught up",
                kcp(Some(3), 2, scaling_up),
                Want::InProgress(
                    "condition ScalingUp is True (ScalingUp: Scaling up from 2 to 3 replicas)",
                ),
            ),
            (
                "Available False",
                kcp(Some(3), 2, unavailable),
                Want::InProgress("condition Available is False (NotAvailable: etcd quorum lost)"),
            ),
            (
                "Available True but stale",
                kcp(Some(3), 2, stale_available),
                Want::InProgress("condition Available is True but stale"),
            ),
            (
                "v1beta1 falls back to generic Ready",
                v1beta1,
                Want::InProgress("condition Ready is False (ScalingUp)"),
            ),
        ]);
    }

    fn md(spec_replicas: Option<i64>, generation: i64, status: Value) -> Value {
        let mut spec = json!({"clusterName": "c1"});
        if let Some(r) = spec_replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
               "metadata": {"name": "c1-md-0", "namespace": "fleet", "generation": generation},
               "spec": spec, "status": status})
    }

    #[test]
    fn machine_deployment() {
        let mut rolling = counters(4, 2, 2, 2, 2);
        rolling["conditions"][1] = cond(
            "RollingOut",
            "True",
            "RollingOut",
            "Rolling out 2 not up-to-date replicas",
        );
        let mut failed = counters(4, 2, 0, 0, 0);
        failed["phase"] = json!("Failed");
        check(vec![
            (
                "rolled out",
                md(Some(2), 4, counters(4, 2, 2, 2, 2)),
                Want::Ready,
            ),
            (
                "replicas defaulted to 1",
                md(None, 1, counters(1, 1, 1, 1, 1)),
                Want::Ready,
            ),
            (
                "scaled to zero",
                md(Some(0), 2, counters(2, 0, 0, 0, 0)),
                Want::Ready,
            ),
            (
                "counters lagging: up to date but not ready",
                md(Some(2), 4, counters(4, 2, 2, 1, 1)),
                Want::InProgress("1 of 2 replicas ready (status.readyReplicas)"),
            ),
            (
                "counters lagging: surge machine still there",
                md(Some(2), 4, counters(4, 3, 2, 3, 3)),
                Want::InProgress("status.replicas is 3, spec.replicas is 2"),
            ),
            (
                "counters missing",
                md(Some(2), 1, json!({"observedGeneration": 1})),
                Want::InProgress("status.replicas is 0, spec.replicas is 2"),
            ),
            (
                "observedGeneration lagging",
                md(Some(2), 5, counters(4, 2, 2, 2, 2)),
                Want::InProgress("status.observedGeneration 4 is behind metadata.generation 5"),
            ),
            (
                "RollingOut True",
                md(Some(2), 4, rolling),
                Want::InProgress("condition RollingOut is True"),
            ),
            (
                "phase Failed",
                md(Some(2), 4, failed),
                Want::Failed("status.phase is Failed"),
            ),
        ]);
    }

    fn capi_cluster(status: Value) -> Value {
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
               "metadata": {"name": "c1", "namespace": "fleet", "generation": 2}, "spec": {}, "status": status})
    }

    #[test]
    fn cluster_cases() {
        check(vec![
            (
                "provisioned and available",
                capi_cluster(json!({"phase": "Provisioned", "observedGeneration": 2,
                    "conditions": [cond("Available", "True", "Available", "")]})),
                Want::Ready,
            ),
            (
                "provisioned, not available",
                capi_cluster(json!({"phase": "Provisioned", "observedGeneration": 2,
                    "conditions": [cond("Available", "False", "NotAvailable", "* WorkersAvailable: 0 of 2 available")]})),
                Want::InProgress("condition Available is False (NotAvailable"),
            ),
            (
                "available but still provisioning",
                capi_cluster(json!({"phase": "Provisioning", "observedGeneration": 2,
                    "conditions": [cond("Available", "True", "Available", "")]})),
                Want::InProgress("status.phase is Provisioning (want Provisioned)"),
            ),
            (
                "observedGeneration lagging",
                capi_cluster(json!({"phase": "Provisioned", "observedGeneration": 1,
                    "conditions": [cond("Available", "True", "Available", "")]})),
                Want::InProgress("status.observedGeneration 1 is behind metadata.generation 2"),
            ),
            (
                "failed",
                capi_cluster(json!({"phase": "Failed"})),
                Want::Failed("status.phase is Failed"),
            ),
        ]);
    }

    #[test]
    fn control_plane_initialized_cases() {
        let by_field = capi_cluster(json!({"initialization": {"controlPlaneInitialized": true}}));
        let by_condition = capi_cluster(json!({"conditions": [
            cond("ControlPlaneInitialized", "True", "Initialized", "")]}));
        let not_yet = capi_cluster(json!({"initialization": {"controlPlaneInitialized": false,
            "infrastructureProvisioned": true}, "conditions": [
            cond("ControlPlaneInitialized", "False", "NotInitialized", "")]}));
        let bare = capi_cluster(json!({}));
        assert!(control_plane_initialized(&by_field));
        assert!(control_plane_initialized(&by_condition));
        assert!(!control_plane_initialized(&not_yet));
        assert!(!control_plane_initialized(&bare));
    }

    #[test]
    fn machine_cases() {
        let m = |status: Value| {
            json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                   "metadata": {"name": "c1-cp-x", "namespace": "fleet"}, "status": status})
        };
        check(vec![
            (
                "running with node",
                m(json!({"phase": "Running", "nodeRef": {"name": "c1-cp-x"}})),
                Want::Ready,
            ),
            (
                "running without nodeRef",
                m(json!({"phase": "Running"})),
                Want::InProgress("status.nodeRef not set"),
            ),
            (
                "provisioned, node joined, phase not updated",
                m(json!({"phase": "Provisioned", "nodeRef": {"name": "c1-cp-x"}})),
                Want::InProgress("status.phase is Provisioned (want Running)"),
            ),
            (
                "failed",
                m(json!({"phase": "Failed"})),
                Want::Failed("status.phase is Failed"),
            ),
        ]);
    }

    #[test]
    fn generic() {
        let cr = |generation: i64, status: Value| {
            json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "DockerCluster",
                   "metadata": {"name": "c1", "namespace": "fleet", "generation": generation}, "status": status})
        };
        check(vec![
            (
                "ConfigMap without status",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "a"},
                       "data": {"k": "v"}}),
                Want::Ready,
            ),
            (
                "CR without status controller",
                json!({"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "w", "namespace": "a", "generation": 3}, "spec": {}}),
                Want::Ready,
            ),
            (
                "Ready True",
                cr(
                    1,
                    json!({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Ready", "")]}),
                ),
                Want::Ready,
            ),
            (
                "Ready False names reason and message",
                cr(
                    1,
                    json!({"observedGeneration": 1, "conditions": [
                    cond("Ready", "False", "LoadBalancerProvisioningFailed", "haproxy container not running")]}),
                ),
                Want::InProgress(
                    "condition Ready is False (LoadBalancerProvisioningFailed: haproxy container not running)",
                ),
            ),
            (
                "Ready Unknown",
                cr(
                    1,
                    json!({"conditions": [{"type": "Ready", "status": "Unknown"}]}),
                ),
                Want::InProgress("condition Ready is Unknown"),
            ),
            (
                "Ready True but observedGeneration lagging",
                cr(
                    2,
                    json!({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Ready", "")]}),
                ),
                Want::InProgress("status.observedGeneration 1 is behind metadata.generation 2"),
            ),
            (
                "no Ready condition, observedGeneration lagging",
                cr(2, json!({"observedGeneration": 1})),
                Want::InProgress("status.observedGeneration 1 is behind metadata.generation 2"),
            ),
            (
                "no Ready condition, observedGeneration current",
                cr(
                    2,
                    json!({"observedGeneration": 2, "conditions": [cond("Provisioned", "False", "", "")]}),
                ),
                Want::Ready,
            ),
        ]);
    }

    #[test]
    fn unready_reason_names_the_object() {
        let ready = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"},
                           "status": {"phase": "Active"}});
        let terminating = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"},
                                 "status": {"phase": "Terminating"}});
        assert_eq!(unready_reason(&ready), None);
        assert_eq!(
            unready_reason(&terminating).as_deref(),
            Some("Namespace/a: status.phase is Terminating (want Active)")
        );
        let d = deploy(
            Some(3),
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                                          "availableReplicas": 3}),
        );
        assert_eq!(
            unready_reason(&d).as_deref(),
            Some(
                "Deployment/kube-system/coredns: 2 of 3 replicas updated (status.updatedReplicas)"
            )
        );
        let failed = job(
            json!({}),
            json!({"conditions": [cond("Failed", "True", "BackoffLimitExceeded", "")]}),
        );
        assert_eq!(
            unready_reason(&failed).as_deref(),
            Some("Job/app/migrate: Job failed: condition Failed is True (BackoffLimitExceeded)")
        );
    }

    #[test]
    fn is_ready() {
        assert!(Health::Ready.is_ready());
        assert!(!Health::InProgress("x".into()).is_ready());
        assert!(!Health::Failed("x".into()).is_ready());
    }
}
