//! What applying a cluster (or the fleet) would change, with no writes: the management-side
//! stages where the CAPI objects live, the pivot and add-ons stages in the workload cluster
//! when it exists (otherwise everything would be created).

use std::sync::Arc;

use serde_json::Value;

use super::ClusterError;
use super::fleet::{Outcome, for_each, named};
use super::workload::live_in_workload;
use super::workload::workload_api;
use crate::apply::api::{ClusterApi, KubeClusterApi};
use crate::apply::groups::{as_pivoted, handed_over, stage};
use crate::apply::stage;
use crate::diff::plan::{ObjectChange, Observed, Plan, plan_stage};
use crate::model::types::StageName;
use crate::render::Bundle;
use crate::render::capi::cluster_ref;

/// The plan of a stage whose cluster does not exist yet: everything is created.
fn all_created(stage_name: StageName, objects: &[Value], prune: bool) -> Vec<ObjectChange> {
    let observed: Vec<Observed> = objects
        .iter()
        .map(|o| Observed {
            desired: o.clone(),
            dry_run: None,
            live: None,
        })
        .collect();
    plan_stage(stage_name, &observed, &[], prune)
}

/// What applying a cluster would do (no writes): management-side stages against the
/// management cluster, add-ons against the workload cluster when it exists.
pub async fn diff_cluster(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    prune: bool,
) -> Result<Plan, ClusterError> {
    let name = bundle.cluster.as_str();
    let mut plan = Plan {
        cluster: name.to_string(),
        changes: Vec::new(),
    };
    let api_err = |source| ClusterError::Api {
        step: "diff",
        source,
    };
    // A pivoted cluster's CAPI objects live in the workload cluster (reached through the
    // kubeconfig kept in cairn-system); the others' in the management cluster.
    let pivoted = match bundle.pivot {
        true => live_in_workload(mgmt, name).await?.map(|(api, _)| api),
        false => None,
    };
    let in_mgmt = mgmt
        .get(&cluster_ref(name))
        .await
        .map_err(api_err)?
        .is_some();
    let (capi_api, workload, bundle) = match pivoted {
        Some(api) if !in_mgmt => (None, Some(api), &as_pivoted(bundle)),
        _ => (Some(mgmt), workload_api(mgmt, name).await?, bundle),
    };
    let shared = handed_over(bundle);
    for (stage_name, create_only) in [
        (StageName::Bootstrap, shared.as_slice()),
        (StageName::Workload, &[][..]),
    ] {
        let objects = stage(bundle, stage_name);
        let changes = match (capi_api, &workload) {
            (Some(api), _) => stage::plan(api, name, stage_name, objects, create_only, prune).await,
            (None, Some(api)) => {
                stage::plan(api, name, stage_name, objects, create_only, prune).await
            }
            (None, None) => Ok(all_created(stage_name, objects, prune)),
        }
        .map_err(api_err)?;
        plan.changes.extend(changes);
    }
    for stage_name in [StageName::Pivot, StageName::Addons] {
        let objects = stage(bundle, stage_name);
        let changes = match &workload {
            Some(api) => stage::plan(api, name, stage_name, objects, &[], prune)
                .await
                .map_err(api_err)?,
            // No workload cluster yet: everything will be created.
            None => all_created(stage_name, objects, prune),
        };
        plan.changes.extend(changes);
    }
    Ok(plan)
}

/// What applying every cluster would do, at most `concurrency` at a time.
pub async fn diff_fleet(
    mgmt: Arc<KubeClusterApi>,
    bundles: Vec<Bundle>,
    prune: bool,
    concurrency: usize,
) -> Vec<Outcome<Plan>> {
    for_each(named(bundles), concurrency, move |bundle| {
        let mgmt = mgmt.clone();
        async move { diff_cluster(&mgmt, &bundle, prune).await }
    })
    .await
}
