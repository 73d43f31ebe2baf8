//! Standing in for kube-controller-manager and the kubelets, for add-ons: in every workload
//! server, each Deployment, StatefulSet and DaemonSet is reported rolled out for its current
//! generation and each Job complete (written only when its status says otherwise); a
//! component's Deployment (a provider's or cert-manager's) only when its pod can be scheduled on
//! a Node there and the ConfigMaps and Secrets it mounts exist. In the management server, whose
//! nodes are not simulated, only the components' Deployments, taken as scheduled. In every
//! server, Namespaces being deleted are emptied and finalized, as the namespace controller does.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::{Value, json};

use super::agent::{AGENT_DEPLOYMENT, AGENT_NAMESPACE};
use super::certmanager;
use super::objects::{FIELD_MANAGER, generation, int, is_deleting, name, object_ref, s};
use super::pod::{Pending, template_schedulable, template_volumes_exist};
use super::schema::Server;
use super::status::{Cond, conditions, is_true, now, set_observed_generation};
use super::{Report, SimulatorError};
use crate::pivot::providers::PROVIDER_LABEL;
use crate::render::kinds::label;

const MESSAGE: &str = "rolled out by the cairn simulator";

/// Which server [`reconcile`] plays the kubelets of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// A workload server: its Nodes are the simulator's.
    Simulated,
    /// The management server: no Nodes; the providers' pods are taken as running there.
    Management,
}

/// Writes a rolled-out status to every Deployment, StatefulSet and DaemonSet, and a complete
/// one to every Job, of `server` whose status does not say so already (in the management
/// server, to the providers' Deployments only).
pub async fn reconcile(server: &Server, scope: Nodes) -> Result<(), SimulatorError> {
    let nodes = server.list("v1", "Node", None, None).await?;
    let kinds: &[&str] = match scope {
        Nodes::Simulated => &["Deployment", "StatefulSet", "DaemonSet", "Job"],
        Nodes::Management => &["Deployment"],
    };
    let selectors: &[Option<&str>] = match scope {
        Nodes::Simulated => &[None],
        Nodes::Management => &[Some(PROVIDER_LABEL), Some(certmanager::SELECTOR)],
    };
    for &kind in kinds {
        let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        let mut objects = Vec::new();
        for selector in selectors {
            objects.extend(server.list(api_version, kind, None, *selector).await?);
        }
        for obj in objects {
            let desired = match kind {
                _ if is_deleting(&obj) => None,
                // The agent's Deployment is reported available by the agent slot, while it runs.
                "Deployment"
                    if name(&obj) == AGENT_DEPLOYMENT
                        && s(&obj, "/metadata/namespace") == AGENT_NAMESPACE =>
                {
                    None
                }
                "Deployment" if is_component(&obj) => {
                    Some(match component_runs(server, &obj, &nodes, scope).await? {
                        Ok(()) => deployment_status(&obj),
                        Err(why) => unavailable_status(&obj, &why),
                    })
                }
                "Deployment" => Some(deployment_status(&obj)),
                "StatefulSet" => Some(statefulset_status(&obj)),
                "DaemonSet" => Some(daemonset_status(&obj, &nodes)),
                _ => job_status(&obj),
            };
            let Some(desired) = desired else { continue };
            if converged(obj.get("status").unwrap_or(&Value::Null), &desired) {
                continue;
            }
            server
                .api
                .patch_status(&obj, &desired, FIELD_MANAGER)
                .await
                .map_err(|source| SimulatorError::WorkloadStatus {
                    object: object_ref(&obj),
                    source: Box::new(source),
                })?;
        }
    }
    Ok(())
}

/// Whether `obj` is one of the components `clusterctl init` installs (a provider's or
/// cert-manager's).
fn is_component(obj: &Value) -> bool {
    label(obj, PROVIDER_LABEL).is_some() || certmanager::is_cert_manager(obj)
}

/// Whether the pod of a component's Deployment runs: it is scheduled (in a workload server;
/// the management server's nodes are not simulated) and its volumes can be mounted (a
/// provider's webhook serving Secret exists only once cert-manager issued it).
async fn component_runs(
    server: &Server,
    deployment: &Value,
    nodes: &[Value],
    scope: Nodes,
) -> Result<Result<(), Pending>, SimulatorError> {
    if scope == Nodes::Simulated {
        if let Err(why) = template_schedulable(deployment, nodes) {
            return Ok(Err(why));
        }
    }
    template_volumes_exist(server, deployment).await
}

/// The status of a Deployment whose pod cannot start: unavailable, saying why.
pub fn unavailable_status(deployment: &Value, why: &str) -> Value {
    let n = replicas(deployment);
    let mut status = json!({
        "replicas": n, "updatedReplicas": n, "readyReplicas": 0, "availableReplicas": 0,
        "unavailableReplicas": n,
        "conditions": conditions(
            deployment.pointer("/status/conditions"),
            &[Cond::new("Available", false, "MinimumReplicasUnavailable").msg(why)],
            None,
        ),
    });
    set_observed_generation(&mut status, deployment);
    status
}

/// `spec.replicas`, defaulting to 1.
fn replicas(obj: &Value) -> i64 {
    int(obj, "/spec/replicas", 1)
}

fn deployment_status(obj: &Value) -> Value {
    let n = replicas(obj);
    // Status is merge-patched: a count the pod's earlier trouble set is cleared explicitly.
    let mut status = json!({
        "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
        "unavailableReplicas": null,
        "conditions": conditions(
            obj.pointer("/status/conditions"),
            &[
                Cond::new("Available", true, "MinimumReplicasAvailable").msg(MESSAGE),
                Cond::new("Progressing", true, "NewReplicaSetAvailable").msg(MESSAGE),
            ],
            None,
        ),
    });
    set_observed_generation(&mut status, obj);
    status
}

fn statefulset_status(obj: &Value) -> Value {
    let n = replicas(obj);
    let revision = format!("{}-{}", name(obj), generation(obj).unwrap_or(0));
    let mut status = json!({
        "replicas": n, "readyReplicas": n, "currentReplicas": n, "updatedReplicas": n,
        "availableReplicas": n, "currentRevision": revision, "updateRevision": revision,
    });
    set_observed_generation(&mut status, obj);
    status
}

/// One pod per Node its pod can be scheduled on (node selector and tolerations), each running.
fn daemonset_status(obj: &Value, nodes: &[Value]) -> Value {
    let n = nodes
        .iter()
        .filter(|node| template_schedulable(obj, std::slice::from_ref(node)).is_ok())
        .count() as i64;
    let mut status = json!({
        "desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": n,
        "updatedNumberScheduled": n, "numberAvailable": n, "numberMisscheduled": 0,
    });
    set_observed_generation(&mut status, obj);
    status
}

/// The status of a Job whose pods all succeeded; `None` for a suspended or complete Job.
fn job_status(obj: &Value) -> Option<Value> {
    if is_true(obj, "Complete") || obj.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        return None;
    }
    let n = int(obj, "/spec/completions", 1);
    let now = now();
    let started = obj.pointer("/status/startTime").cloned();
    let mut status = json!({
        "startTime": started.unwrap_or_else(|| now.clone().into()),
        "completionTime": now,
        "succeeded": n,
        "active": 0,
        "ready": 0,
        "conditions": conditions(
            obj.pointer("/status/conditions"),
            &[
                Cond::new("SuccessCriteriaMet", true, "CompletionsReached").msg(MESSAGE),
                Cond::new("Complete", true, "CompletionsReached").msg(MESSAGE),
            ],
            None,
        ),
    });
    if s(obj, "/spec/completionMode") == "Indexed" && n > 0 {
        status["completedIndexes"] = match n {
            1 => "0".into(),
            _ => format!("0-{}", n - 1).into(),
        };
    }
    Some(status)
}

/// Whether `current` already says what `desired` does: the same numbers (an absent counter is
/// 0, as the API server omits zeros), strings, and conditions (by type, status and reason).
fn converged(current: &Value, desired: &Value) -> bool {
    let Some(desired) = desired.as_object() else {
        return true;
    };
    desired.iter().all(|(key, want)| {
        let have = current.get(key);
        match want {
            Value::Number(n) => {
                have.and_then(Value::as_i64).unwrap_or(0) == n.as_i64().unwrap_or(0)
            }
            Value::Array(conds) => conds.iter().all(|c| {
                have.and_then(Value::as_array).is_some_and(|cs| {
                    cs.iter().any(|h| {
                        h["type"] == c["type"]
                            && h["status"] == c["status"]
                            && h["reason"] == c["reason"]
                    })
                })
            }),
            // A field the patch clears.
            Value::Null => have.is_none_or(Value::is_null),
            other => have == Some(other),
        }
    })
}

/// Finishes the Namespaces being deleted in `server`: deletes every object in them, and once
/// none is left, removes the `kubernetes` finalizer so that the Namespace goes.
pub async fn finish_namespaces(server: &Server, report: &mut Report) -> Result<(), SimulatorError> {
    let deleting: Vec<Value> = server
        .list("v1", "Namespace", None, None)
        .await?
        .into_iter()
        .filter(is_deleting)
        .collect();
    if deleting.is_empty() {
        return Ok(());
    }
    let discovery = Discovery::new(server.api.client().clone())
        .run()
        .await
        .map_err(|source| SimulatorError::Discover {
            server: server.label.clone(),
            source: Box::new(source),
        })?;
    let resources: Vec<(String, String)> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
        })
        .map(|(ar, _)| (ar.api_version, ar.kind))
        .collect();
    for namespace in deleting {
        let mut left = 0;
        for (api_version, kind) in &resources {
            for obj in server
                .list(api_version, kind, Some(name(&namespace)), None)
                .await?
            {
                left += 1;
                if !is_deleting(&obj)
                    && server
                        .delete(&obj, "delete an object of a deleted Namespace")
                        .await?
                {
                    report.deleted.push(object_ref(&obj));
                }
            }
        }
        if left == 0 {
            finalize(server, &namespace).await?;
            report.deleted.push(object_ref(&namespace));
        }
    }
    Ok(())
}

/// Removes the `kubernetes` finalizer from `spec.finalizers` (the `finalize` subresource).
async fn finalize(server: &Server, namespace: &Value) -> Result<(), SimulatorError> {
    let finalizers = namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == "kubernetes") {
        return Ok(());
    }
    let mut body = namespace.clone();
    body["spec"]["finalizers"] = finalizers
        .into_iter()
        .filter(|f| f != "kubernetes")
        .collect();
    Api::<Namespace>::all(server.api.client().clone())
        .replace_subresource("finalize", name(namespace), &PostParams::default(), &body)
        .await
        .map_err(|source| SimulatorError::FinalizeNamespace {
            namespace: name(namespace).to_string(),
            server: server.label.clone(),
            source: Box::new(source),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_out_status_is_healthy_and_then_converged() {
        use crate::apply::health::{Health, health};
        let mut deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "generation": 3},
            "spec": {"replicas": 2},
        });
        assert!(!converged(&Value::Null, &deployment_status(&deploy)));
        deploy["status"] = deployment_status(&deploy);
        assert_eq!(health(&deploy), Health::Ready);
        assert!(converged(&deploy["status"], &deployment_status(&deploy)));
        deploy["metadata"]["generation"] = 4.into();
        assert!(!converged(&deploy["status"], &deployment_status(&deploy)));
        // A pod that could not start, then could: the merge-patched status is healthy.
        deploy["status"] = unavailable_status(&deploy, "Secret n/cert not found");
        assert!(!health(&deploy).is_ready());
        let rolled_out = deployment_status(&deploy);
        json_patch::merge(&mut deploy["status"], &rolled_out);
        assert_eq!(health(&deploy), Health::Ready, "{:#}", deploy["status"]);
        assert!(converged(&deploy["status"], &deployment_status(&deploy)));

        let mut ds = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "n", "generation": 1},
        });
        // The API server omits zero counters: they still count as converged.
        assert!(converged(
            &json!({"observedGeneration": 1}),
            &daemonset_status(&ds, &[])
        ));
        // One pod per Node its pod tolerates: a tainted control-plane Node is left out.
        let node = |taints: Value| json!({"metadata": {"name": "n"}, "spec": {"taints": taints}});
        let nodes = [
            node(json!([])),
            node(json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])),
        ];
        ds["status"] = daemonset_status(&ds, &nodes);
        assert_eq!(ds["status"]["desiredNumberScheduled"], 1);
        assert_eq!(health(&ds), Health::Ready);
    }
}
