//! Reaching a workload cluster: through CAPI's `<cluster>-kubeconfig` Secret in the cluster's
//! namespace, or, once the cluster has pivoted (and that Secret moved with it), through the
//! copy the pivot keeps in `cairn-system` of the management cluster.

use base64::Engine;
use serde_json::Value;

use super::ClusterError;
use crate::apply::api::{ApiError, ClusterApi, KubeClusterApi};
use crate::apply::wait::{WaitError, poll_until};
use crate::render::capi::{cluster_ref, kubeconfig_secret, kubeconfig_secret_name};
use crate::render::kinds::object_ref;
use crate::render::pivot::AGENT_NAMESPACE;

/// The error when the `<cluster>-kubeconfig` Secret a step needs is not there (any more).
pub fn kubeconfig_gone(cluster: &str) -> ClusterError {
    ClusterError::Workload {
        namespace: cluster.to_string(),
        name: kubeconfig_secret_name(cluster),
        reason: "the Secret disappeared".into(),
    }
}

/// The kubeconfig in a `<cluster>-kubeconfig` Secret (key `value`, base64), or what is wrong.
fn decode(secret: &Value) -> Result<String, String> {
    let encoded = secret
        .pointer("/data/value")
        .and_then(Value::as_str)
        .ok_or("no `value` key")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("`value` is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "`value` is not UTF-8".to_string())
}

/// A client through the `<cluster>-kubeconfig` Secret in `namespace`, if that Secret exists.
async fn through_secret(
    mgmt: &impl ClusterApi,
    cluster: &str,
    namespace: &str,
) -> Result<Option<KubeClusterApi>, ClusterError> {
    let Some(live) = mgmt
        .get(&kubeconfig_secret(cluster, namespace))
        .await
        .map_err(|source| ClusterError::Api {
            step: "read the workload kubeconfig",
            source,
        })?
    else {
        return Ok(None);
    };
    let unreachable = |reason: String| ClusterError::Workload {
        namespace: namespace.to_string(),
        name: kubeconfig_secret_name(cluster),
        reason,
    };
    let yaml = decode(&live).map_err(unreachable)?;
    let (client, server) = crate::kube_client::client_and_server_from_kubeconfig(&yaml)
        .await
        .map_err(|e| unreachable(crate::errors::chain(&e)))?;
    Ok(Some(KubeClusterApi::with_server(client, server, false)))
}

/// A client for the workload cluster, from the `<cluster>-kubeconfig` Secret CAPI writes.
pub async fn workload_api(
    mgmt: &impl ClusterApi,
    cluster: &str,
) -> Result<Option<KubeClusterApi>, ClusterError> {
    through_secret(mgmt, cluster, cluster).await
}

/// A client for the workload cluster: through the kubeconfig copy kept in `cairn-system`
/// (which outlives the pivot), else through CAPI's `<cluster>-kubeconfig` Secret.
pub async fn reach_workload(
    mgmt: &impl ClusterApi,
    cluster: &str,
) -> Result<Option<KubeClusterApi>, ClusterError> {
    match through_secret(mgmt, cluster, AGENT_NAMESPACE).await? {
        Some(api) => Ok(Some(api)),
        None => workload_api(mgmt, cluster).await,
    }
}

/// The live Cluster of a pivoted cluster, read through the kept kubeconfig.
pub async fn live_in_workload(
    mgmt: &impl ClusterApi,
    cluster: &str,
) -> Result<Option<(KubeClusterApi, Value)>, ClusterError> {
    let Some(workload) = reach_workload(mgmt, cluster).await? else {
        return Ok(None);
    };
    let live = workload
        .get(&cluster_ref(cluster))
        .await
        .map_err(|source: ApiError| ClusterError::Api {
            step: "read the Cluster in the workload cluster",
            source,
        })?;
    Ok(live.map(|l| (workload, l)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kubeconfig_secret_decodes_or_says_what_is_wrong() {
        let secret = |data: Value| json!({"data": data});
        assert_eq!(
            decode(&secret(json!({"value": "YXBpVmVyc2lvbjogdjE="}))).as_deref(),
            Ok("apiVersion: v1")
        );
        assert_eq!(
            decode(&secret(json!({}))),
            Err("no `value` key".to_string())
        );
        assert!(
            decode(&secret(json!({"value": "%%"})))
                .unwrap_err()
                .contains("not base64")
        );
        assert!(
            decode(&secret(json!({"value": "/w=="})))
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}

/// Refreshes the kubeconfig copy kept in `cairn-system` of the management cluster from the
/// workload cluster's own `<cluster>-kubeconfig` (which moved there with the pivot, and which
/// KCP rotates: a copy taken once would expire within a year). Writes only when it changed;
/// nothing to do before the pivot, while the workload cluster holds no such Secret.
pub async fn refresh_kept_kubeconfig(
    mgmt: &impl ClusterApi,
    workload: &impl ClusterApi,
    cluster: &str,
) -> Result<bool, ClusterError> {
    let api = |step| move |source| ClusterError::Api { step, source };
    let own = workload
        .get(&kubeconfig_secret(cluster, cluster))
        .await
        .map_err(api("read the workload cluster's own kubeconfig Secret"))?;
    let Some(value) = own
        .as_ref()
        .and_then(|s| s.pointer("/data/value"))
        .and_then(Value::as_str)
    else {
        return Ok(false);
    };
    let kept = mgmt
        .get(&kubeconfig_secret(cluster, AGENT_NAMESPACE))
        .await
        .map_err(api("read the kept workload kubeconfig"))?;
    if kept
        .as_ref()
        .and_then(|k| k.pointer("/data/value"))
        .and_then(Value::as_str)
        == Some(value)
    {
        return Ok(false);
    }
    mgmt.apply(&crate::pivot::mover::kubeconfig_copy(cluster, value))
        .await
        .map_err(api("refresh the kept workload kubeconfig"))?;
    Ok(true)
}

/// Waits until the workload cluster has Nodes and every one is Ready (its `Ready` condition
/// True), naming each one that is not, with the kubelet's reason, when time runs out.
pub async fn wait_nodes_ready(
    workload: &impl ClusterApi,
    timeout: std::time::Duration,
) -> Result<(), WaitError> {
    poll_until(timeout, || async {
        Ok(match workload.list("v1", "Node", None, None).await {
            Ok(nodes) if nodes.is_empty() => vec!["no Node has registered yet".to_string()],
            Ok(nodes) => nodes.iter().filter_map(node_unready).collect(),
            Err(e) if e.is_unreachable() => {
                vec![format!("the API server: {}", crate::errors::chain(&e))]
            }
            Err(e) => return Err(e.into()),
        })
    })
    .await
}

/// `Node/name: why` when the Node is not Ready.
fn node_unready(node: &Value) -> Option<String> {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" => None,
        Some(c) => Some(format!(
            "{}: not Ready: {} {}",
            object_ref(node),
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )),
        None => Some(format!("{}: no Ready condition yet", object_ref(node))),
    }
}
