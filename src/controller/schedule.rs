//! Which clusters the controller touches, and when (PURE: data in, data out).
//!
//! A cluster is due when it is new, when its bundle hash differs from the one last applied,
//! when its drift check is due, or when its backoff after a failure has passed. A failing
//! cluster waits out an exponential backoff on its own; the others are not held. A new
//! revision of a failing cluster's bundle is tried at once: it may be the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Why a cluster is reconciled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Never reconciled by this process.
    New,
    /// Its bundle differs from the one last applied.
    Changed,
    /// Converged, but its drift check is due.
    Drift,
    /// It failed and its backoff has passed.
    Retry,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub cluster: String,
    pub reason: Reason,
}

/// Delay after the n-th failure in a row: `base * 2^(n-1)`, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// What the controller knows of one cluster.
#[derive(Clone, Debug, Default)]
struct Track {
    /// Bundle hash of the last successful reconcile.
    applied: Option<String>,
    /// When it last converged.
    converged_at: Option<Instant>,
    /// Failures in a row, the hash they were for, and when to try again.
    failures: u32,
    failed_hash: Option<String>,
    retry_at: Option<Instant>,
}

/// The per-cluster bookkeeping of a controller.
#[derive(Clone, Debug)]
pub struct Schedule {
    tracks: BTreeMap<String, Track>,
    drift_interval: Duration,
    backoff: Backoff,
}

impl Schedule {
    pub fn new(drift_interval: Duration, backoff: Backoff) -> Schedule {
        Schedule {
            tracks: BTreeMap::new(),
            drift_interval,
            backoff,
        }
    }

    /// The clusters of `desired` (name -> bundle hash) due at `now`, skipping those in flight.
    pub fn due(
        &self,
        desired: &BTreeMap<String, String>,
        in_flight: &BTreeSet<String>,
        now: Instant,
    ) -> Vec<Due> {
        desired
            .iter()
            .filter(|(name, _)| !in_flight.contains(*name))
            .filter_map(|(name, hash)| {
                let reason = self.reason(name, hash, now)?;
                Some(Due {
                    cluster: name.clone(),
                    reason,
                })
            })
            .collect()
    }

    fn reason(&self, name: &str, hash: &str, now: Instant) -> Option<Reason> {
        let Some(track) = self.tracks.get(name) else {
            return Some(Reason::New);
        };
        if let Some(retry_at) = track.retry_at {
            if track.failed_hash.as_deref() != Some(hash) {
                return Some(Reason::Changed);
            }
            return (now >= retry_at).then_some(Reason::Retry);
        }
        if track.applied.as_deref() != Some(hash) {
            return Some(Reason::Changed);
        }
        let checked = track.converged_at?;
        (now.saturating_duration_since(checked) >= self.drift_interval).then_some(Reason::Drift)
    }

    /// Records a successful reconcile of `hash`.
    pub fn succeeded(&mut self, name: &str, hash: &str, now: Instant) {
        self.tracks.insert(
            name.to_string(),
            Track {
                applied: Some(hash.to_string()),
                converged_at: Some(now),
                ..Track::default()
            },
        );
    }

    /// Records a failed reconcile of `hash`; returns how long the cluster now waits.
    pub fn failed(&mut self, name: &str, hash: &str, now: Instant) -> Duration {
        let track = self.tracks.entry(name.to_string()).or_default();
        track.failures += 1;
        track.failed_hash = Some(hash.to_string());
        let delay = self.backoff.delay(track.failures);
        track.retry_at = Some(now + delay);
        delay
    }

    /// Failures in a row of a cluster.
    pub fn failures(&self, name: &str) -> u32 {
        self.tracks.get(name).map_or(0, |t| t.failures)
    }

    /// Forgets clusters that are no longer desired.
    pub fn retain(&mut self, desired: &BTreeMap<String, String>) {
        self.tracks.retain(|name, _| desired.contains_key(name));
    }

    /// The earliest moment a cluster of `desired` becomes due by time alone (a retry or a drift
    /// check), if any.
    pub fn next_due(&self, desired: &BTreeMap<String, String>) -> Option<Instant> {
        desired
            .keys()
            .filter_map(|name| self.tracks.get(name))
            .filter_map(|t| {
                t.retry_at
                    .or_else(|| t.converged_at.map(|at| at + self.drift_interval))
            })
            .min()
    }
}

/// `interval` moved by up to ±10%, with `unit` in [0, 1): replicas and restarts spread their
/// fetches instead of hitting the git host in step.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    interval.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRIFT: Duration = Duration::from_secs(600);
    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(5),
        max: Duration::from_secs(300),
    };

    fn desired(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect()
    }

    fn reasons(s: &Schedule, d: &BTreeMap<String, String>, now: Instant) -> Vec<(String, Reason)> {
        s.due(d, &BTreeSet::new(), now)
            .into_iter()
            .map(|d| (d.cluster, d.reason))
            .collect()
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let delays: Vec<u64> = (1..=9).map(|n| BACKOFF.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(BACKOFF.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn new_then_converged_then_drift_due_after_the_interval() {
        let t0 = Instant::now();
        let d = desired(&[("a", "h1"), ("b", "h1")]);
        let mut s = Schedule::new(DRIFT, BACKOFF);
        assert_eq!(
            reasons(&s, &d, t0),
            [("a".into(), Reason::New), ("b".into(), Reason::New)]
        );
        s.succeeded("a", "h1", t0);
        s.succeeded("b", "h1", t0);
        assert!(reasons(&s, &d, t0 + DRIFT / 2).is_empty());
        assert_eq!(s.next_due(&d), Some(t0 + DRIFT));
        assert_eq!(reasons(&s, &d, t0 + DRIFT).len(), 2);
        assert_eq!(reasons(&s, &d, t0 + DRIFT)[0].1, Reason::Drift);
    }

    #[test]
    fn only_the_cluster_whose_hash_changed_is_due() {
        let t0 = Instant::now();
        let mut s = Schedule::new(DRIFT, BACKOFF);
        s.succeeded("a", "h1", t0);
        s.succeeded("b", "h1", t0);
        let d = desired(&[("a", "h1"), ("b", "h2")]);
        assert_eq!(reasons(&s, &d, t0), [("b".into(), Reason::Changed)]);
    }

    #[test]
    fn a_failing_cluster_waits_its_backoff_and_never_holds_the_others() {
        let t0 = Instant::now();
        let mut s = Schedule::new(DRIFT, BACKOFF);
        let d = desired(&[("bad", "h1"), ("good", "h1")]);
        s.succeeded("good", "h0", t0);
        assert_eq!(s.failed("bad", "h1", t0), Duration::from_secs(5));
        assert_eq!(reasons(&s, &d, t0), [("good".into(), Reason::Changed)]);
        assert_eq!(
            reasons(&s, &d, t0 + Duration::from_secs(5)),
            [
                ("bad".into(), Reason::Retry),
                ("good".into(), Reason::Changed)
            ]
        );
        assert_eq!(
            s.failed("bad", "h1", t0 + Duration::from_secs(5)),
            Duration::from_secs(10)
        );
        assert_eq!(s.failures("bad"), 2);
        assert_eq!(s.next_due(&d), Some(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn a_new_revision_of_a_failing_cluster_is_tried_at_once_and_success_resets() {
        let t0 = Instant::now();
        let mut s = Schedule::new(DRIFT, BACKOFF);
        s.failed("a", "broken", t0);
        s.failed("a", "broken", t0);
        let fixed = desired(&[("a", "fixed")]);
        assert_eq!(reasons(&s, &fixed, t0), [("a".into(), Reason::Changed)]);
        s.succeeded("a", "fixed", t0);
        assert_eq!(s.failures("a"), 0);
        assert!(reasons(&s, &fixed, t0).is_empty());
    }

    #[test]
    fn clusters_in_flight_are_skipped_and_departed_ones_forgotten() {
        let t0 = Instant::now();
        let mut s = Schedule::new(DRIFT, BACKOFF);
        let d = desired(&[("a", "h"), ("b", "h")]);
        let in_flight = BTreeSet::from(["a".to_string()]);
        let due = s.due(&d, &in_flight, t0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].cluster, "b");
        s.succeeded("a", "h", t0);
        s.retain(&desired(&[("b", "h")]));
        assert_eq!(reasons(&s, &d, t0)[0], ("a".into(), Reason::New));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(60);
        assert_eq!(jittered(base, 0.0), Duration::from_secs(54));
        assert_eq!(jittered(base, 0.5), base);
        assert!(jittered(base, 0.999) < Duration::from_secs(66));
        assert_eq!(jittered(base, 7.0), Duration::from_secs(66));
    }
}
