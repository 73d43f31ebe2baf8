//! The life of a cluster (DESIGN.md §3), the heart of cairn: the phases `Provisioning ->
//! ControlPlaneInitialized -> [AgentInstalled -> Pivoted ->] Converging -> Ready`, and `Deleting`
//! when it leaves the repository. It sits between the engines below it (`apply`: a stage at a
//! time; `pivot`: the move) and the processes above it (`agent`, `controller`, the CLI), and
//! every import points down.
//!
//! - `cluster`: a cluster managed from the management cluster, to Ready.
//! - `pivoted`: a cluster that pivots: bootstrap, agent, move, then the agent's Ready.
//! - `removal`: a cluster that left the repository (reverse pivot first, then delete).
//! - `diff`: what applying a cluster (or the fleet) would change, with no writes.
//! - `fleet`: many clusters at once, bounded, one failure never stopping the others.
//! - `status`: one row per cluster, wherever its CAPI objects live.
//! - `phase`: the phase, revision and bundle hash recorded on the live Cluster.
//! - `workload`: reaching the workload cluster (CAPI's kubeconfig Secret, or cairn's copy).
//! - `record`: the agent's record of its cluster, read by whoever reaches the workload cluster.

use std::time::Duration;

use crate::apply::api::ApiError;
use crate::apply::progress::Progress;
use crate::apply::stage::{StageError, StageReport};
use crate::apply::wait::WaitError;
use crate::model::types::StageName;
use crate::pivot::steps::AfterStep;

pub mod cluster;
pub mod diff;
pub mod fleet;
pub mod namespace;
pub mod phase;
pub mod pivoted;
pub mod record;
pub mod removal;
pub mod status;
pub mod workload;

pub use phase::Phase;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{step}")]
    Wait {
        step: &'static str,
        #[source]
        source: WaitError,
    },
    #[error("{step}")]
    Api {
        step: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("cannot reach the workload cluster through Secret {namespace}/{name}: {reason}")]
    Workload {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Move(#[from] crate::pivot::mover::MoveError),
    #[error(
        "the agent of {cluster} did not report the cluster Ready within {waited:?}: {detail}\n  help: the agent \
         renders from its git source ({source_url}); check that this revision is pushed there, and read its log \
         or `kubectl -n cairn-system get pivotplan {cluster} -o yaml` in the workload cluster"
    )]
    AgentNotReady {
        cluster: String,
        waited: Duration,
        detail: String,
        source_url: String,
    },
    #[error(
        "Cluster {cluster} is protected (annotation cairn.dev/protect: \"true\"); it left the repository but is \
         not deleted\n  help: remove the annotation from the live Cluster to allow its deletion, or put the cluster \
         back in the repository"
    )]
    Protected { cluster: String },
    #[error(
        "cluster {cluster}: the task reconciling it crashed (a bug in cairn; please report it)"
    )]
    Crashed {
        cluster: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

#[derive(Clone)]
pub struct ApplyOptions {
    pub prune: bool,
    pub timeout: Duration,
    /// The git revision being applied, recorded on the Cluster.
    pub revision: String,
    /// Where each step is reported.
    pub progress: Progress,
    /// Called right after each pivot step (the CLI's `CAIRN_FAULT_AFTER`).
    pub after_pivot_step: Option<AfterStep>,
}

impl ApplyOptions {
    /// Options that report progress as log lines.
    pub fn new(prune: bool, timeout: Duration, revision: impl Into<String>) -> ApplyOptions {
        ApplyOptions {
            prune,
            timeout,
            revision: revision.into(),
            progress: crate::apply::progress::log_lines(),
            after_pivot_step: None,
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("prune", &self.prune)
            .field("timeout", &self.timeout)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// What applying one cluster did, stage by stage.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClusterReport {
    pub stages: Vec<(StageName, StageReport)>,
}

impl ClusterReport {
    /// The objects applying wrote to: created, updated or deleted.
    pub fn written(&self) -> usize {
        self.stages
            .iter()
            .flat_map(|(_, r)| &r.changes)
            .filter(|c| c.action.writes())
            .count()
    }
}
