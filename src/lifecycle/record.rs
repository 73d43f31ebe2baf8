//! The agent's record of its cluster, kept in the status of the cluster's PivotPlan in
//! `cairn-system` of the workload cluster: whoever can reach the workload cluster (`cairn apply`,
//! `cairn status`) reads it there, and it never depends on the management cluster.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::apply::api::{ApiError, ClusterApi};
use crate::kube_client::{DynamicApi, KubeError};
use crate::render::pivot::{AGENT_NAMESPACE, PIVOT_PLAN_API};

/// Field manager of the agent's status writes.
pub const STATUS_MANAGER: &str = "cairn-agent";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentStatus {
    /// `WaitingForPivot`, `Pivoting`, `Converging`, `Ready` or `Failed`.
    pub phase: String,
    /// The git commit last applied.
    pub revision: String,
    /// `desired_hash` of the bundle last applied.
    pub desired_hash: String,
    /// The source URL, without credentials.
    pub source_url: String,
    /// The last fetch failed: `revision` is the last good one.
    pub source_stale: bool,
    /// Why the last pass failed (or why the source is stale); `None` when it did not.
    pub last_error: Option<String>,
    /// When the agent last finished a pass (RFC 3339).
    pub last_sync: String,
}

impl AgentStatus {
    /// One line for errors and `cairn status`, against the hash a caller waits for.
    pub fn summary(&self, want_hash: &str) -> String {
        let mut text = format!("phase {} at revision {}", self.phase, short(&self.revision));
        if !want_hash.is_empty() && self.desired_hash != want_hash {
            text.push_str(&format!(
                " (it rendered {}, this apply rendered {want_hash})",
                if self.desired_hash.is_empty() {
                    "nothing yet"
                } else {
                    &self.desired_hash
                }
            ));
        }
        if self.source_stale {
            text.push_str("; its source is unreachable (stale)");
        }
        if let Some(error) = &self.last_error {
            text.push_str(&format!("; last error: {error}"));
        }
        text
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// The PivotPlan that carries the record.
pub fn plan_stub(cluster: &str) -> Value {
    json!({"apiVersion": PIVOT_PLAN_API, "kind": "PivotPlan",
           "metadata": {"name": cluster, "namespace": AGENT_NAMESPACE}})
}

/// The agent's record, if it wrote one.
pub async fn read_status(
    api: &impl ClusterApi,
    cluster: &str,
) -> Result<Option<AgentStatus>, ApiError> {
    let Some(plan) = api.get(&plan_stub(cluster)).await? else {
        return Ok(None);
    };
    Ok(plan
        .get("status")
        .and_then(|s| serde_json::from_value::<AgentStatus>(s.clone()).ok())
        .filter(|s| !s.phase.is_empty()))
}

/// Writes the record (a merge patch of the status subresource).
pub async fn write_status(
    api: &DynamicApi,
    cluster: &str,
    status: &AgentStatus,
) -> Result<(), KubeError> {
    let value = serde_json::to_value(status).unwrap_or(Value::Null);
    api.patch_status(&plan_stub(cluster), &value, STATUS_MANAGER)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_phase_hash_mismatch_staleness_and_error() {
        let status = AgentStatus {
            phase: "Converging".into(),
            revision: "0123456789abcdef0123".into(),
            desired_hash: "aaaa".into(),
            source_stale: true,
            last_error: Some("boom".into()),
            ..AgentStatus::default()
        };
        assert_eq!(
            status.summary("bbbb"),
            "phase Converging at revision 0123456789ab (it rendered aaaa, this apply rendered bbbb); \
             its source is unreachable (stale); last error: boom"
        );
        assert!(!status.summary("aaaa").contains("rendered"));
    }

    #[test]
    fn a_cleared_error_serializes_as_null_so_the_merge_patch_removes_it() {
        let value = serde_json::to_value(AgentStatus::default()).unwrap();
        assert_eq!(value["lastError"], Value::Null);
        assert!(value.as_object().unwrap().contains_key("lastError"));
    }
}
