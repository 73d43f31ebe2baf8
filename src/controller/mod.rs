//! The controller (DESIGN.md §6): `cairn run` watches the config repository and keeps every
//! cluster converged from the management cluster.
//!
//! One loop owns all decisions. It fetches on the poll interval (with jitter) or at once when a
//! webhook pulls the trigger, renders a new revision (keeping the last good one when a revision
//! does not render or the source is unreachable), and hands the clusters that are due (see
//! `schedule`) to at most `concurrency` tasks. A slow or failing cluster holds one task, never
//! the loop: results come back to the loop, which records them and backs failures off. Only
//! the leader reconciles; every replica fetches, so a new leader starts warm.

pub mod http;
pub mod leader;
pub mod metrics;
pub mod packed;
pub mod relay;
pub mod schedule;
pub mod shared;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::apply::api::KubeClusterApi;
use crate::errors::chain;
use crate::lifecycle::cluster::apply_cluster;
use crate::lifecycle::phase::bundle_hash;
use crate::lifecycle::removal::{MaxPrune, check_prune, departed, remove_cluster};
use crate::lifecycle::{ApplyOptions, ClusterError};
use crate::model::diag::errors_text;
use crate::render::{Bundle, render_repo_with};
use crate::source::{Mirror, SourceError, SourceSpec};
use packed::Packed;
use schedule::{Backoff, Reason, Schedule, jittered};
use shared::{ClusterView, DELETING, FAILED, READY, RECONCILING, Shared};

/// What reconciling one cluster means: `apply_cluster` (every stage, through the pivot) unless
/// a caller, such as a benchmark that has no provider, supplies its own.
pub type Reconciler = Arc<
    dyn Fn(
            Arc<KubeClusterApi>,
            Arc<Bundle>,
            ApplyOptions,
        ) -> BoxFuture<'static, Result<(), ClusterError>>
        + Send
        + Sync,
>;

/// The reconciler of `cairn run`: the whole cluster, as `cairn apply` does it.
pub fn apply_everything() -> Reconciler {
    Arc::new(|mgmt, bundle, opts| {
        Box::pin(async move { apply_cluster(&mgmt, &bundle, &opts).await.map(|_| ()) })
    })
}

/// How `cairn run` runs.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    pub source: SourceSpec,
    /// The config repository's directory inside the git repository (`--path`).
    pub path: Option<String>,
    /// Where the git mirror lives.
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    /// How often a converged cluster is checked for drift.
    pub reconcile_interval: Duration,
    pub concurrency: usize,
    /// Longest wait for any one step of a cluster.
    pub timeout: Duration,
    pub prune: bool,
    /// Most clusters one revision may delete with `prune`.
    pub max_prune: MaxPrune,
    /// The URL agents of pivoted clusters read (overrides fleet.yaml `spec.source.url`).
    pub agent_source_url: Option<String>,
    pub backoff: Backoff,
    /// How long SIGTERM waits for clusters being reconciled before stopping them.
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot open the git mirror")]
    Mirror(#[from] SourceError),
    #[error("cannot start the mirror: {0}")]
    Blocking(String),
}

/// The revision being reconciled, rendered.
struct Desired {
    revision: String,
    bundles: BTreeMap<String, Packed>,
    /// Bundle hash of every cluster to reconcile; [`DEPARTED`] for a cluster to delete.
    hashes: BTreeMap<String, String>,
}

/// The "hash" of a cluster that left the repository and is deleted (with `--prune`).
const DEPARTED: &str = "departed";

/// A cluster's reconcile, as it comes back to the loop.
struct Done {
    cluster: String,
    hash: String,
    revision: String,
    took: Duration,
    result: Result<(), String>,
}

pub struct Controller {
    opts: ControllerOptions,
    mgmt: Arc<KubeClusterApi>,
    mirror: Mirror,
    shared: Arc<Shared>,
    reconciler: Reconciler,
}

impl Controller {
    /// Opens (or creates) the mirror; nothing is fetched yet.
    pub async fn new(
        mgmt: KubeClusterApi,
        opts: ControllerOptions,
        shared: Arc<Shared>,
    ) -> Result<Controller, ControllerError> {
        let (spec, dir) = (opts.source.clone(), opts.state_dir.clone());
        let mirror = tokio::task::spawn_blocking(move || Mirror::open(&spec, &dir))
            .await
            .map_err(|e| ControllerError::Blocking(e.to_string()))??;
        Ok(Controller {
            opts,
            mgmt: Arc::new(mgmt),
            mirror,
            shared,
            reconciler: apply_everything(),
        })
    }

    /// Replaces what reconciling a cluster does.
    pub fn with_reconciler(mut self, reconciler: Reconciler) -> Controller {
        self.reconciler = reconciler;
        self
    }

    /// Runs until `shutdown` resolves, reconciling while `leading` is true. On shutdown, the
    /// clusters being reconciled get `shutdown_grace` to finish (every write is one atomic
    /// request and phases are recorded on the Cluster, so a stopped task is resumed by the
    /// next leader); then it returns.
    pub async fn run(
        self,
        mut leading: watch::Receiver<bool>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut schedule = Schedule::new(self.opts.reconcile_interval, self.opts.backoff);
        let mut desired: Option<Desired> = None;
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut in_flight = BTreeSet::new();
        let mut next_fetch = Instant::now();
        let mut elector_alive = true;
        loop {
            if Instant::now() >= next_fetch {
                self.refresh(&mut desired, &mut schedule).await;
                next_fetch = Instant::now() + jittered(self.opts.poll_interval, fastrand::f64());
            }
            let is_leader = *leading.borrow_and_update();
            if self.shared.view_leader() != is_leader {
                self.shared.metrics.leading(is_leader);
                self.shared.update(|v| v.leader = is_leader);
                if !is_leader {
                    self.step_down(&mut tasks, &mut in_flight, &mut schedule);
                }
            }
            if let (true, Some(d)) = (is_leader, &desired) {
                self.launch(d, &schedule, &mut tasks, &mut in_flight);
            }
            let by_time = desired.as_ref().and_then(|d| schedule.next_due(&d.hashes));
            let wake = by_time.map_or(next_fetch, |t| t.min(next_fetch));
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.shared.triggered() => next_fetch = Instant::now(),
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(done) = done {
                        in_flight.remove(&done.cluster);
                        self.record(done, &mut schedule, &mut desired);
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
                changed = leading.changed(), if elector_alive => {
                    // No sender: leadership is fixed from here on (no election, or it ended).
                    elector_alive = changed.is_ok();
                }
            }
        }
        self.drain(tasks).await;
    }

    /// Fetches and renders; a failure keeps the last good revision and says so.
    async fn refresh(&self, desired: &mut Option<Desired>, schedule: &mut Schedule) {
        let mirror = self.mirror.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            mirror.fetch().map_err(|e| crate::errors::chain(&e))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let revision = match fetched {
            Ok(revision) => {
                self.shared.metrics.fetched(&revision);
                self.shared.update(|v| {
                    v.source_stale = false;
                    v.source_error = None;
                });
                revision
            }
            Err(e) => {
                self.shared.metrics.fetch_failed();
                let kept = desired.as_ref().map(|d| d.revision.clone());
                tracing::warn!(keeping = ?kept, "cannot fetch the source: {e}");
                self.shared.update(|v| {
                    v.source_stale = true;
                    v.source_error = Some(e);
                });
                return;
            }
        };
        if desired.as_ref().is_some_and(|d| d.revision == revision) {
            return;
        }
        match self.render(&revision).await {
            Ok(mut next) => {
                self.add_departed(&mut next).await;
                tracing::info!(%revision, clusters = next.bundles.len(), "rendered a new revision");
                schedule.retain(&next.hashes);
                self.shared.update(|v| {
                    v.revision = Some(revision.clone());
                    v.render_error = None;
                    v.clusters.retain(|name, _| next.hashes.contains_key(name));
                    for name in next.hashes.keys() {
                        v.clusters
                            .entry(name.clone())
                            .or_insert_with(ClusterView::pending);
                    }
                });
                *desired = Some(next);
            }
            Err(e) => {
                tracing::warn!(%revision, "revision does not render; keeping the last good one: {e}");
                self.shared.update(|v| v.render_error = Some(e));
            }
        }
    }

    /// With `--prune`, the live clusters the revision no longer has, to be deleted (reverse
    /// pivot first for pivoted ones; `cairn.dev/protect` refuses).
    async fn add_departed(&self, next: &mut Desired) {
        if !self.opts.prune {
            return;
        }
        let rendered: Vec<String> = next.bundles.keys().cloned().collect();
        let names = match departed(self.mgmt.as_ref(), &rendered).await {
            Ok(names) => names,
            Err(e) => {
                let e = crate::errors::chain(&e);
                tracing::warn!("cannot list the clusters that left the repository: {e}");
                return;
            }
        };
        let refused = check_prune(&names, rendered.len(), self.opts.max_prune).err();
        match &refused {
            Some(why) => tracing::warn!(revision = %next.revision, "{why}"),
            None => {
                for name in names {
                    next.hashes.insert(name, DEPARTED.to_string());
                }
            }
        }
        self.shared
            .update(|v| v.prune_refused = refused.map(|why| why.to_string()));
    }

    /// Renders every cluster of `revision` (blocking work, off the async threads).
    async fn render(&self, revision: &str) -> Result<Desired, String> {
        let mirror = self.mirror.clone();
        let (rev, path) = (revision.to_string(), self.opts.path.clone());
        let agent_url = self.opts.agent_source_url.clone();
        let (bundles, hashes) = tokio::task::spawn_blocking(move || {
            let mut snapshot = mirror
                .snapshot(&rev)
                .map_err(|e| crate::errors::chain(&e))?;
            if let Some(path) = path {
                snapshot = snapshot.subtree(&path);
                if snapshot.is_empty() {
                    return Err(format!("--path {path}: no such directory at {rev}"));
                }
            }
            // Streamed: each bundle is hashed and packed as it comes, so the whole fleet never
            // sits in memory as JSON trees.
            let packed = std::sync::Mutex::new((BTreeMap::new(), BTreeMap::new()));
            let diagnostics = render_repo_with(&snapshot, &[], |mut bundle| {
                if let Some(url) = &agent_url {
                    crate::render::pivot::override_source_url(&mut bundle, url);
                }
                let hash = bundle_hash(&bundle);
                let mut maps = packed.lock().unwrap_or_else(|e| e.into_inner());
                maps.0.insert(bundle.cluster.clone(), Packed::pack(&bundle));
                maps.1.insert(bundle.cluster.clone(), hash);
                Ok(())
            });
            if let Some(errors) = errors_text(&diagnostics, "\n") {
                return Err(errors);
            }
            Ok(packed.into_inner().unwrap_or_else(|e| e.into_inner()))
        })
        .await
        .map_err(|e| crate::errors::chain(&e))??;
        Ok(Desired {
            revision: revision.to_string(),
            bundles,
            hashes,
        })
    }

    /// Starts the due clusters while tasks are free.
    fn launch(
        &self,
        desired: &Desired,
        schedule: &Schedule,
        tasks: &mut JoinSet<Done>,
        in_flight: &mut BTreeSet<String>,
    ) {
        let free = self.opts.concurrency.max(1).saturating_sub(in_flight.len());
        for due in schedule
            .due(&desired.hashes, in_flight, Instant::now())
            .into_iter()
            .take(free)
        {
            let Some(hash) = desired.hashes.get(&due.cluster) else {
                continue;
            };
            let bundle = match desired.bundles.get(&due.cluster).map(Packed::unpack) {
                None => None,
                Some(Ok(bundle)) => Some(Arc::new(bundle)),
                Some(Err(e)) => {
                    tracing::error!(cluster = %due.cluster, "{e}");
                    continue;
                }
            };
            in_flight.insert(due.cluster.clone());
            if due.reason != Reason::Drift {
                tracing::info!(cluster = %due.cluster, reason = ?due.reason, "reconciling");
            }
            let phase = if bundle.is_some() {
                RECONCILING
            } else {
                DELETING
            };
            self.shared.update_cluster(&due.cluster, |c| {
                c.phase = phase.into();
                c.retry_in_seconds = None;
            });
            tasks.spawn(reconcile(
                self.reconciler.clone(),
                self.mgmt.clone(),
                (due.cluster.clone(), bundle),
                hash.clone(),
                self.apply_options(&desired.revision),
            ));
        }
    }

    fn apply_options(&self, revision: &str) -> ApplyOptions {
        let mut opts = ApplyOptions::new(self.opts.prune, self.opts.timeout, revision);
        let shared = self.shared.clone();
        opts.progress = Arc::new(move |cluster, step| {
            tracing::debug!(cluster, "{step}");
            shared.update_cluster(cluster, |c| c.step = step.to_string());
        });
        opts
    }

    /// Records a finished reconcile: converged, or backed off.
    fn record(&self, done: Done, schedule: &mut Schedule, desired: &mut Option<Desired>) {
        self.shared
            .metrics
            .reconciled(&done.cluster, done.result.is_ok(), done.took);
        match done.result {
            Ok(()) if done.hash == DEPARTED => {
                tracing::info!(cluster = %done.cluster, "deleted (it left the repository)");
                if let Some(d) = desired {
                    d.hashes.remove(&done.cluster);
                    schedule.retain(&d.hashes);
                }
                self.shared.update(|v| v.clusters.remove(&done.cluster));
            }
            Ok(()) => {
                schedule.succeeded(&done.cluster, &done.hash, Instant::now());
                self.shared.update_cluster(&done.cluster, |c| {
                    c.took_seconds = Some(done.took.as_secs_f64());
                    c.phase = READY.into();
                    c.revision = Some(done.revision.clone());
                    c.failures = 0;
                    c.last_error = None;
                });
            }
            Err(error) => {
                let delay = schedule.failed(&done.cluster, &done.hash, Instant::now());
                let failures = schedule.failures(&done.cluster);
                tracing::warn!(cluster = %done.cluster, failures, retry_in = ?delay, "{error}");
                self.shared.update_cluster(&done.cluster, |c| {
                    c.took_seconds = Some(done.took.as_secs_f64());
                    c.phase = FAILED.into();
                    c.failures = failures;
                    c.retry_in_seconds = Some(delay.as_secs());
                    c.last_error = Some(error);
                });
            }
        }
    }

    /// Leadership lost: another replica may be leading already, so the reconciles in flight
    /// stop now rather than write beside it (as client-go's callers exit when they stop
    /// leading). Each write is one request and phases are on the Cluster: the new leader resumes.
    /// What this replica knew is forgotten; should it lead again, it starts from the live state.
    fn step_down(
        &self,
        tasks: &mut JoinSet<Done>,
        in_flight: &mut BTreeSet<String>,
        schedule: &mut Schedule,
    ) {
        if !tasks.is_empty() {
            tracing::warn!(
                clusters = tasks.len(),
                "no longer the leader: stopping the reconciles in flight"
            );
        }
        tasks.abort_all();
        in_flight.clear();
        schedule.retain(&BTreeMap::new());
        self.shared.update(|v| {
            for cluster in v.clusters.values_mut() {
                *cluster = ClusterView::pending();
            }
        });
    }

    /// Gives the clusters being reconciled the grace period, then stops the rest.
    async fn drain(&self, mut tasks: JoinSet<Done>) {
        if tasks.is_empty() {
            return;
        }
        tracing::info!(
            clusters = tasks.len(),
            grace = ?self.opts.shutdown_grace,
            "stopping: waiting for the clusters being reconciled"
        );
        let deadline = tokio::time::sleep(self.opts.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    Some(Ok(done)) => tracing::info!(cluster = %done.cluster, ok = done.result.is_ok(), "finished before stopping"),
                    Some(Err(_)) => {}
                    None => return,
                },
                _ = &mut deadline => {
                    tracing::warn!(clusters = tasks.len(), "grace period over; the next leader resumes them");
                    tasks.abort_all();
                    return;
                }
            }
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}

/// Applies a cluster (`Some` bundle) or deletes one that left the repository.
async fn reconcile(
    reconciler: Reconciler,
    mgmt: Arc<KubeClusterApi>,
    (cluster, bundle): (String, Option<Arc<Bundle>>),
    hash: String,
    opts: ApplyOptions,
) -> Done {
    let started = Instant::now();
    let revision = opts.revision.clone();
    let work = async {
        match bundle {
            Some(bundle) => reconciler(mgmt, bundle, opts).await,
            None => remove_cluster(&mgmt, &cluster, &opts).await,
        }
    };
    // A reconciler that panics fails its own cluster (which leaves the in-flight set and
    // backs off like any failure); it never takes a concurrency slot with it.
    let result = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result.map_err(|e| chain(&e)),
        Err(panic) => Err(format!(
            "cluster {cluster}: reconciling it crashed (a bug in cairn; please report it): {}",
            panic_message(panic.as_ref())
        )),
    };
    Done {
        cluster,
        hash,
        revision,
        took: started.elapsed(),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reconciler that panics for `bad` and succeeds for every other cluster.
    fn panics_for(bad: &'static str) -> Reconciler {
        Arc::new(move |_, bundle, _| {
            Box::pin(async move {
                if bundle.cluster == bad {
                    panic!("boom in {bad}");
                }
                Ok(())
            })
        })
    }

    #[tokio::test]
    async fn a_panicking_reconcile_fails_its_cluster_and_the_others_finish() {
        // Never dialled: the reconciler does not touch the API.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let mgmt = Arc::new(KubeClusterApi::new(
            kube::Client::try_from(config).unwrap(),
            false,
        ));
        let reconciler = panics_for("b");
        let mut tasks = JoinSet::new();
        for name in ["a", "b", "c"] {
            let bundle = Bundle {
                cluster: name.to_string(),
                pivot: false,
                stages: Vec::new(),
            };
            tasks.spawn(reconcile(
                reconciler.clone(),
                mgmt.clone(),
                (name.to_string(), Some(Arc::new(bundle))),
                "hash".into(),
                ApplyOptions::new(false, Duration::from_secs(1), "rev"),
            ));
        }
        let mut done: Vec<(String, Result<(), String>)> = Vec::new();
        while let Some(next) = tasks.join_next().await {
            let next = next.expect("every task returns its Done, even one that panicked");
            done.push((next.cluster, next.result));
        }
        done.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(done[0], ("a".to_string(), Ok(())));
        assert_eq!(done[2], ("c".to_string(), Ok(())));
        let error = done[1].1.as_ref().unwrap_err();
        assert!(
            error.contains("cluster b") && error.contains("boom in b"),
            "{error}"
        );
    }
}
