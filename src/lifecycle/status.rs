//! `cairn status`: one row per cluster, read where its CAPI objects live: the management
//! cluster, or (for a pivoted cluster) the workload cluster through the kept kubeconfig, where
//! the agent's own record is read too.

use serde::Serialize;
use serde_json::Value;

use super::ClusterError;
use super::phase::{PHASE_ANNOTATION, REVISION_ANNOTATION};
use super::record::{AgentStatus, read_status};
use super::removal::departed;
use super::workload::live_in_workload;
use crate::apply::api::ClusterApi;
use crate::pivot::steps::JOURNAL_ANNOTATION;
use crate::render::capi::CLUSTER_API;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    /// The infrastructure kind (`DockerCluster`, `VSphereCluster`, `AWSCluster`).
    pub provider: String,
    pub phase: String,
    pub revision: String,
    /// `management`, `workload`, `moving` (a pivot is in progress) or `unreachable`.
    pub location: String,
    pub machines_ready: i64,
    pub machines_desired: i64,
    pub last_error: Option<String>,
    /// When the Cluster was created (RFC 3339).
    pub created: String,
    /// The agent's record, for pivoted clusters.
    pub agent: Option<AgentStatus>,
}

fn annotation(obj: &Value, key: &str) -> String {
    crate::render::kinds::annotation(obj, key)
        .unwrap_or_default()
        .to_string()
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// PURE: a row from the live Cluster and its control plane and worker pools.
pub fn row(
    name: &str,
    location: &str,
    cluster: &Value,
    scalables: &[Value],
    agent: Option<AgentStatus>,
) -> ClusterStatus {
    let moving = !annotation(cluster, JOURNAL_ANNOTATION).is_empty();
    let mut phase = annotation(cluster, PHASE_ANNOTATION);
    let mut revision = annotation(cluster, REVISION_ANNOTATION);
    let mut last_error = None;
    if let Some(agent) = &agent {
        if !agent.phase.is_empty() {
            phase = agent.phase.clone();
        }
        if !agent.revision.is_empty() {
            revision = agent.revision.clone();
        }
        last_error = agent.last_error.clone();
    }
    ClusterStatus {
        name: name.to_string(),
        provider: cluster
            .pointer("/spec/infrastructureRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        phase,
        revision,
        location: if moving {
            "moving".into()
        } else {
            location.to_string()
        },
        machines_ready: scalables
            .iter()
            .map(|o| int(o, "/status/readyReplicas"))
            .sum(),
        machines_desired: scalables.iter().map(|o| int(o, "/spec/replicas")).sum(),
        last_error,
        created: cluster
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        agent,
    }
}

async fn scalables(api: &impl ClusterApi, name: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (api_version, kind) in [
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
        (CLUSTER_API, "MachineDeployment"),
    ] {
        out.extend(
            api.list(api_version, kind, Some(name), None)
                .await
                .unwrap_or_default(),
        );
    }
    out
}

/// Every cluster cairn manages, sorted by name.
pub async fn fleet_status(mgmt: &impl ClusterApi) -> Result<Vec<ClusterStatus>, ClusterError> {
    let mut rows = Vec::new();
    for name in departed(mgmt, &[]).await? {
        let in_mgmt = mgmt
            .get(&crate::render::capi::cluster_ref(&name))
            .await
            .map_err(|source| ClusterError::Api {
                step: "read the Cluster",
                source,
            })?;
        let row_for = match in_mgmt {
            Some(cluster) => row(
                &name,
                "management",
                &cluster,
                &scalables(mgmt, &name).await,
                None,
            ),
            None => match live_in_workload(mgmt, &name).await {
                Ok(Some((workload, cluster))) => {
                    let agent = read_status(&workload, &name).await.ok().flatten();
                    row(
                        &name,
                        "workload",
                        &cluster,
                        &scalables(&workload, &name).await,
                        agent,
                    )
                }
                Ok(None) | Err(_) => ClusterStatus {
                    name: name.clone(),
                    location: "unreachable".into(),
                    last_error: Some(
                        "the workload cluster does not answer through the kept kubeconfig".into(),
                    ),
                    ..ClusterStatus::default()
                },
            },
        };
        rows.push(row_for);
    }
    Ok(rows)
}

/// PURE: the table `cairn status` prints.
pub fn table(rows: &[ClusterStatus]) -> String {
    let mut lines = vec![[
        "NAME".to_string(),
        "PROVIDER".into(),
        "PHASE".into(),
        "REVISION".into(),
        "CAPI OBJECTS IN".into(),
        "MACHINES".into(),
        "CREATED".into(),
        "LAST ERROR".into(),
    ]];
    for r in rows {
        lines.push([
            r.name.clone(),
            r.provider.trim_end_matches("Cluster").to_string(),
            r.phase.clone(),
            r.revision.chars().take(12).collect(),
            r.location.clone(),
            format!("{}/{}", r.machines_ready, r.machines_desired),
            r.created.clone(),
            r.last_error
                .clone()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|l| {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pivoted_row_takes_phase_revision_and_error_from_the_agent() {
        let cluster = json!({"metadata": {"creationTimestamp": "2026-11-24T00:00:00Z",
                                          "annotations": {PHASE_ANNOTATION: "Pivoted", REVISION_ANNOTATION: "old"}},
                             "spec": {"infrastructureRef": {"kind": "AWSCluster"}}});
        let kcp = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        let md = json!({"spec": {"replicas": 5}, "status": {"readyReplicas": 2}});
        let agent = AgentStatus {
            phase: "Converging".into(),
            revision: "0123456789abcdef".into(),
            last_error: Some("md-0 not ready".into()),
            ..AgentStatus::default()
        };
        let r = row("c", "workload", &cluster, &[kcp, md], Some(agent));
        assert_eq!(
            (r.phase.as_str(), r.revision.as_str()),
            ("Converging", "0123456789abcdef")
        );
        assert_eq!((r.machines_ready, r.machines_desired), (5, 8));
        assert_eq!(r.location, "workload");
        let text = table(&[r]);
        assert!(text.starts_with("NAME"), "{text}");
        assert!(
            text.contains("c     AWS       Converging  0123456789ab  workload         5/8"),
            "{text}"
        );
    }

    #[test]
    fn a_cluster_with_an_open_journal_is_moving() {
        let cluster = json!({"metadata": {"annotations": {JOURNAL_ANNOTATION: "{\"direction\":\"forward\",\"step\":\"pause\"}"}}});
        assert_eq!(
            row("c", "management", &cluster, &[], None).location,
            "moving"
        );
    }
}
