//! What the controller's loop and its HTTP server share: the view of the fleet (`/status`,
//! `/readyz`), the metrics, and the trigger a webhook pulls.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::metrics::Metrics;

/// The controller's view of the fleet, served as JSON on `/status`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FleetView {
    /// The revision being reconciled: the last one fetched that rendered.
    pub revision: Option<String>,
    pub source_url: String,
    pub branch: String,
    /// The last fetch failed; `revision` is the last good one.
    pub source_stale: bool,
    pub source_error: Option<String>,
    /// The newest fetched revision does not render; `revision` is the last good one.
    pub render_error: Option<String>,
    /// Why the clusters that left the repository are not deleted (too many at once, or an
    /// empty render).
    pub prune_refused: Option<String>,
    pub leader: bool,
    pub clusters: BTreeMap<String, ClusterView>,
}

/// One cluster as the controller sees it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClusterView {
    /// Pending (not started yet), Reconciling, Ready, Failed, or Deleting (it left the
    /// repository and `--prune` is on).
    pub phase: String,
    /// The last step reported while reconciling.
    pub step: String,
    /// The revision last applied successfully.
    pub revision: Option<String>,
    /// Failures in a row, and how long until the next try.
    pub failures: u32,
    pub retry_in_seconds: Option<u64>,
    pub last_error: Option<String>,
    /// How long the last reconcile took.
    pub took_seconds: Option<f64>,
}

impl ClusterView {
    /// A cluster the controller has not started on.
    pub fn pending() -> ClusterView {
        ClusterView {
            phase: PENDING.into(),
            ..ClusterView::default()
        }
    }
}

pub const PENDING: &str = "Pending";
pub const RECONCILING: &str = "Reconciling";
pub const READY: &str = "Ready";
pub const FAILED: &str = "Failed";
pub const DELETING: &str = "Deleting";

pub struct Shared {
    pub metrics: Metrics,
    view: Mutex<FleetView>,
    trigger: Notify,
    /// Push webhooks accepted so far (the relay tells the leader of those a follower got).
    pushes: tokio::sync::watch::Sender<u64>,
    webhook_secret: Option<Vec<u8>>,
}

impl Shared {
    pub fn new(source_url: String, branch: String, webhook_secret: Option<Vec<u8>>) -> Shared {
        Shared {
            metrics: Metrics::new(),
            view: Mutex::new(FleetView {
                source_url,
                branch,
                ..FleetView::default()
            }),
            trigger: Notify::new(),
            pushes: tokio::sync::watch::channel(0).0,
            webhook_secret,
        }
    }

    /// A copy of the view.
    pub fn view(&self) -> FleetView {
        self.lock().clone()
    }

    /// Changes the view; the phase counts in the metrics follow.
    pub fn update<T>(&self, change: impl FnOnce(&mut FleetView) -> T) -> T {
        let mut view = self.lock();
        let out = change(&mut view);
        self.count_phases(&view);
        out
    }

    /// Changes one cluster's view (created Pending when new). Phases are counted again only
    /// when its phase changed: progress steps come often, and counting is linear in the fleet.
    pub fn update_cluster(&self, cluster: &str, change: impl FnOnce(&mut ClusterView)) {
        let mut view = self.lock();
        let entry = view
            .clusters
            .entry(cluster.to_string())
            .or_insert_with(ClusterView::pending);
        let before = entry.phase.clone();
        change(entry);
        if entry.phase != before {
            self.count_phases(&view);
        }
    }

    fn count_phases(&self, view: &FleetView) {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for cluster in view.clusters.values() {
            match counts.get_mut(&cluster.phase) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(cluster.phase.clone(), 1);
                }
            }
        }
        self.metrics.phases(&counts);
    }

    pub fn view_leader(&self) -> bool {
        self.lock().leader
    }

    /// Ready once a fetched revision has rendered.
    pub fn ready(&self) -> bool {
        self.lock().revision.is_some()
    }

    pub fn branch(&self) -> String {
        self.lock().branch.clone()
    }

    pub fn webhook_secret(&self) -> Option<&[u8]> {
        self.webhook_secret.as_deref()
    }

    /// Asks the loop to fetch now (a permit is kept if the loop is busy, so none is lost).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    pub async fn triggered(&self) {
        self.trigger.notified().await
    }

    /// A push webhook for the watched branch arrived: fetch now, and let the relay know.
    pub fn pushed(&self) {
        self.trigger();
        self.pushes.send_modify(|n| *n += 1);
    }

    /// Changes whenever a push webhook is accepted.
    pub fn pushes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.pushes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetView> {
        // A panic elsewhere while holding the lock leaves a view that is still readable.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}
