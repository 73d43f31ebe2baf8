//! Leader election with a `coordination.k8s.io/v1` Lease (DESIGN.md §6), after client-go's
//! `leaderelection` package: every candidate reads the Lease each renew period, and the holder
//! renews it while the others wait until it is released or has expired. Writes carry the
//! `resourceVersion` that was read, so when two candidates race the API server lets one win and
//! answers the other with a 409 Conflict.
//!
//! [`decide`] is the pure core; [`Elector`] does the I/O around it.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

/// What a candidate should do with the Lease it has just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by this candidate.
    Create,
    /// This candidate holds the Lease: renew it.
    Renew,
    /// The Lease was released (no holder) or has expired: take it over.
    TakeOver,
    /// Another candidate holds a live Lease: wait.
    Follow {
        /// The current holder's identity.
        holder: String,
    },
}

/// Decides what `identity` should do with the Lease whose spec is `lease` (`None`: no Lease
/// exists) at time `now`. `lease_duration` is used only when the Lease does not announce its own
/// `leaseDurationSeconds`.
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::TakeOver,
        Some(holder) if holder == identity => Decision::Renew,
        Some(_) if expired(spec, now, lease_duration) => Decision::TakeOver,
        Some(holder) => Decision::Follow {
            holder: holder.to_string(),
        },
    }
}

/// A Lease expires once `renewTime + leaseDurationSeconds` has passed. The duration the holder
/// wrote wins over ours because it is the holder's promise; a Lease that was never renewed has
/// nothing to keep it alive.
fn expired(spec: &LeaseSpec, now: Timestamp, fallback: Duration) -> bool {
    let Some(MicroTime(renewed)) = &spec.renew_time else {
        return true;
    };
    let duration = spec.lease_duration_seconds.map_or(fallback, |seconds| {
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    });
    // An expiry past the end of time never comes.
    renewed
        .checked_add(duration)
        .is_ok_and(|expiry| expiry < now)
}

/// The spec to write for `decision`, or `None` when following.
fn claim(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> Option<LeaseSpec> {
    let renewed = LeaseSpec {
        holder_identity: Some(identity.to_string()),
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(whole_seconds(lease_duration)),
        ..current.cloned().unwrap_or_default()
    };
    let transitions = current.and_then(|spec| spec.lease_transitions).unwrap_or(0);
    match decision {
        Decision::Follow { .. } => None,
        Decision::Renew => Some(renewed),
        Decision::Create => Some(LeaseSpec {
            acquire_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..renewed
        }),
        Decision::TakeOver => Some(LeaseSpec {
            acquire_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions.saturating_add(1)),
            ..renewed
        }),
    }
}

/// The spec that gives the Lease up, as client-go's `ReleaseOnCancel` does: without a holder a
/// follower takes over at its next read instead of waiting for the Lease to expire, and the
/// one-second duration covers candidates that only look at the expiry.
fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(1),
        ..current.clone()
    }
}

/// `leaseDurationSeconds` is whole seconds: round up so the Lease never promises less than we
/// hold it for.
fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
}

/// Where the Lease lives, who this candidate is, and the timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease; it must exist.
    pub namespace: String,
    /// Name of the Lease, shared by all candidates.
    pub name: String,
    /// This candidate's identity, unique among the candidates (see [`default_identity`]).
    pub identity: String,
    /// How long a holder's Lease lasts without renewal; a holder that cannot renew steps down
    /// before this runs out.
    pub lease_duration: Duration,
    /// How often every candidate reads the Lease; well below `lease_duration`, so that a holder
    /// gets several tries before its Lease expires.
    pub renew_period: Duration,
}

impl LeaseConfig {
    /// A config with client-go's usual timings: a 15 s Lease, read every 2 s.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(2),
        }
    }
}

/// The identity of this process: `$POD_NAME` (set through the downward API in `deploy/`), else
/// the hostname followed by `-<pid>`, so that two processes on one machine differ.
pub fn default_identity() -> String {
    match std::env::var("POD_NAME") {
        Ok(pod) if !pod.is_empty() => pod,
        _ => format!("{}-{}", hostname(), std::process::id()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "cairn".to_string())
}

/// What went wrong with the Lease `lease` (`namespace/name`), naming the step.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Creating the Lease found no namespace; retrying cannot help.
    #[error(
        "cannot create Lease {lease}: namespace {namespace} does not exist; create it (the \
         manifests in deploy/ do) or point leader election at an existing namespace"
    )]
    NamespaceMissing { lease: String, namespace: String },
    /// Reading the Lease failed.
    #[error("cannot read Lease {lease}")]
    Read { lease: String, source: kube::Error },
    /// Creating or renewing the Lease failed.
    #[error("cannot write Lease {lease}")]
    Write { lease: String, source: kube::Error },
    /// Giving the Lease up failed.
    #[error("cannot release Lease {lease}")]
    Release { lease: String, source: kube::Error },
    /// The API server did not answer in time.
    #[error("Lease {lease}: the API server did not answer within {after:?}")]
    TimedOut { lease: String, after: Duration },
}

/// Annotation on the Lease by which a follower that received a push webhook asks the leader
/// to fetch (the Service sends webhooks to any replica; see `relay`).
pub const FETCH_REQUEST_ANNOTATION: &str = "cairn.dev/fetch-requested";

/// Takes part in the election for one Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The Lease's fetch-request annotation as last read.
    requests: watch::Sender<Option<String>>,
}

impl Elector {
    /// An elector for the Lease `config` names.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            requests: watch::channel(None).0,
        }
    }

    /// The Lease's `cairn.dev/fetch-requested` annotation, updated at each read of the Lease.
    pub fn fetch_requests(&self) -> watch::Receiver<Option<String>> {
        self.requests.subscribe()
    }

    /// Campaigns until `shutdown` completes, publishing on `leading` whether this candidate
    /// leads. API errors are logged and retried; a holder that cannot renew steps down one
    /// renew period before its Lease expires, since another candidate may take over then. On
    /// shutdown a leader releases the Lease so a follower takes over at once. Fails only when
    /// retrying cannot help (the namespace does not exist).
    pub async fn run(
        self,
        leading: watch::Sender<bool>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LeaderError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticks = tokio::time::interval(self.config.renew_period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When the last successful renewal was sent, while this candidate leads.
        let mut renewed_at: Option<Instant> = None;
        loop {
            let step_down_at = renewed_at.map(|at| at + self.leading_for());
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                // Its own timer, so that late ticks or slow rounds cannot delay it.
                () = tokio::time::sleep_until(step_down_at.unwrap_or_else(Instant::now)),
                    if step_down_at.is_some() =>
                {
                    warn!(
                        lease = %self.lease_ref(),
                        identity = %self.config.identity,
                        "could not renew the Lease for {:?}; stepping down before it expires, \
                         since another replica may take over then",
                        self.leading_for(),
                    );
                    renewed_at = None;
                }
                _ = ticks.tick() => match self.round(renewed_at).await {
                    Ok(renewed) => renewed_at = renewed,
                    Err(error) => {
                        self.publish(&leading, false);
                        return Err(error);
                    }
                },
            }
            self.publish(&leading, renewed_at.is_some());
        }
        if renewed_at.is_some() {
            self.release().await;
        }
        self.publish(&leading, false);
        Ok(())
    }

    /// How long a holder keeps leading after it sent its last successful renewal: until one
    /// renew period before the Lease expires, which leaves room for late timers and clock
    /// skew between replicas, as client-go's renew deadline does. At least half the Lease,
    /// should the renew period be too long for that.
    fn leading_for(&self) -> Duration {
        let lease = self.config.lease_duration;
        lease
            .saturating_sub(self.config.renew_period)
            .max(lease / 2)
    }

    /// One round, given when this candidate last renewed if it leads; returns the same after
    /// the round. Errors that retrying may cure are logged and leave leadership as it was.
    async fn round(&self, renewed_at: Option<Instant>) -> Result<Option<Instant>, LeaderError> {
        let sent = Instant::now();
        // A hung request must not keep a holder leading past its time.
        let deadline = renewed_at.map_or(sent + self.config.lease_duration, |at| {
            at + self.leading_for()
        });
        match self.within(deadline, self.acquire_or_renew()).await {
            Ok(true) => Ok(Some(sent)),
            Ok(false) => Ok(None),
            Err(error @ LeaderError::NamespaceMissing { .. }) => Err(error),
            Err(error) => {
                warn!(%error, identity = %self.config.identity, "leader election will retry");
                Ok(renewed_at)
            }
        }
    }

    /// One round: read the Lease, decide, write. `Ok(true)` when this candidate holds the
    /// Lease afterwards.
    async fn acquire_or_renew(&self) -> Result<bool, LeaderError> {
        // A holder's renewal that loses a race was beaten by a write that is not a candidate's
        // (a follower's fetch request, a person's annotation): read again rather than step down.
        for _ in 0..2 {
            let (held, renewing) = self.acquire_or_renew_once().await?;
            if held || !renewing {
                return Ok(held);
            }
        }
        Ok(false)
    }

    /// One read, decision and write; also whether the decision was to renew.
    async fn acquire_or_renew_once(&self) -> Result<(bool, bool), LeaderError> {
        let current = self.read().await?;
        let requested = current
            .as_ref()
            .and_then(|l| l.metadata.annotations.as_ref())
            .and_then(|a| a.get(FETCH_REQUEST_ANNOTATION))
            .cloned();
        self.requests.send_if_modified(|seen| {
            let changed = *seen != requested;
            *seen = requested;
            changed
        });
        // A Lease without a spec exists but has no holder: it is taken over, not created.
        let spec = current
            .as_ref()
            .map(|lease| lease.spec.clone().unwrap_or_default());
        let now = Timestamp::now();
        let identity = &self.config.identity;
        let decision = decide(spec.as_ref(), identity, now, self.config.lease_duration);
        let Some(next) = claim(
            spec.as_ref(),
            &decision,
            identity,
            now,
            self.config.lease_duration,
        ) else {
            debug!(lease = %self.lease_ref(), ?decision, "following");
            return Ok((false, false));
        };
        let renewing = decision == Decision::Renew;
        Ok((self.write(current, next, &decision).await?, renewing))
    }

    /// Creates the Lease, or replaces the version that was read. `Ok(false)` when another
    /// candidate wrote it first.
    async fn write(
        &self,
        current: Option<Lease>,
        next: LeaseSpec,
        decision: &Decision,
    ) -> Result<bool, LeaderError> {
        let creating = current.is_none();
        let params = PostParams::default();
        let written = match current {
            None => self.api.create(&params, &self.new_lease(next)).await,
            Some(mut lease) => {
                lease.spec = Some(next);
                self.api.replace(&self.config.name, &params, &lease).await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                let lease = self.lease_ref();
                debug!(%lease, ?decision, "another candidate wrote the Lease first");
                Ok(false)
            }
            Err(kube::Error::Api(status)) if creating && status.is_not_found() => {
                Err(LeaderError::NamespaceMissing {
                    lease: self.lease_ref(),
                    namespace: self.config.namespace.clone(),
                })
            }
            Err(source) => Err(LeaderError::Write {
                lease: self.lease_ref(),
                source,
            }),
        }
    }

    /// Gives the Lease up if this candidate still holds it. A failure only delays the
    /// successor until the Lease expires, so it is logged.
    async fn release(&self) {
        let deadline = Instant::now() + self.config.lease_duration;
        match self.within(deadline, self.try_release()).await {
            Ok(true) => info!(lease = %self.lease_ref(), "released the Lease"),
            Ok(false) => {
                debug!(lease = %self.lease_ref(), "the Lease was no longer ours to release")
            }
            Err(error) => warn!(%error, "a successor takes over when the Lease expires"),
        }
    }

    async fn try_release(&self) -> Result<bool, LeaderError> {
        let Some(mut lease) = self.read().await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        *spec = released(spec, Timestamp::now());
        // A conflict means another candidate wrote the Lease since: it is not ours any more.
        let params = PostParams::default();
        match self.api.replace(&self.config.name, &params, &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(source) => Err(LeaderError::Release {
                lease: self.lease_ref(),
                source,
            }),
        }
    }

    /// Bounds `round` by `deadline`, so that no request hangs forever.
    async fn within<T>(
        &self,
        deadline: Instant,
        round: impl Future<Output = Result<T, LeaderError>>,
    ) -> Result<T, LeaderError> {
        let after = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout_at(deadline, round)
            .await
            .unwrap_or_else(|_| {
                Err(LeaderError::TimedOut {
                    lease: self.lease_ref(),
                    after,
                })
            })
    }

    async fn read(&self) -> Result<Option<Lease>, LeaderError> {
        let read = self.api.get_opt(&self.config.name).await;
        read.map_err(|source| LeaderError::Read {
            lease: self.lease_ref(),
            source,
        })
    }

    fn new_lease(&self, spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    /// Publishes only changes, so receivers wake when leadership moves, and logs them.
    fn publish(&self, leading: &watch::Sender<bool>, now_leading: bool) {
        if leading.send_if_modified(|was| std::mem::replace(was, now_leading) != now_leading) {
            info!(
                lease = %self.lease_ref(),
                identity = %self.config.identity,
                leading = now_leading,
                "leadership changed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "cairn-a";
    const DURATION: Duration = Duration::from_secs(15);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn held(holder: Option<&str>, renewed: Option<i64>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: seconds,
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        }
    }

    fn follow(holder: &str) -> Decision {
        Decision::Follow {
            holder: holder.to_string(),
        }
    }

    #[test]
    fn decide_table() {
        let cases: Vec<(&str, Option<LeaseSpec>, i64, Decision)> = vec![
            ("no lease", None, 0, Decision::Create),
            (
                "ours, fresh",
                Some(held(Some(ME), Some(0), Some(15))),
                1,
                Decision::Renew,
            ),
            (
                "ours, expired: nobody took it",
                Some(held(Some(ME), Some(0), Some(15))),
                99,
                Decision::Renew,
            ),
            (
                "released: no holder",
                Some(held(None, Some(0), Some(1))),
                0,
                Decision::TakeOver,
            ),
            (
                "released: empty holder",
                Some(held(Some(""), Some(0), Some(15))),
                0,
                Decision::TakeOver,
            ),
            (
                "other, fresh",
                Some(held(Some("b"), Some(0), Some(15))),
                10,
                follow("b"),
            ),
            (
                "other, exactly at expiry",
                Some(held(Some("b"), Some(0), Some(15))),
                15,
                follow("b"),
            ),
            (
                "other, expired",
                Some(held(Some("b"), Some(0), Some(15))),
                16,
                Decision::TakeOver,
            ),
            (
                "other, its own longer duration wins",
                Some(held(Some("b"), Some(0), Some(60))),
                30,
                follow("b"),
            ),
            (
                "other, its own shorter duration wins",
                Some(held(Some("b"), Some(0), Some(5))),
                6,
                Decision::TakeOver,
            ),
            (
                "other, no duration: ours",
                Some(held(Some("b"), Some(0), None)),
                14,
                follow("b"),
            ),
            (
                "other, no duration, expired by ours",
                Some(held(Some("b"), Some(0), None)),
                16,
                Decision::TakeOver,
            ),
            (
                "other, never renewed",
                Some(held(Some("b"), None, Some(15))),
                0,
                Decision::TakeOver,
            ),
            (
                "other, renewed in our future (clock skew)",
                Some(held(Some("b"), Some(100), Some(15))),
                0,
                follow("b"),
            ),
        ];
        for (case, spec, now, expected) in cases {
            assert_eq!(
                decide(spec.as_ref(), ME, at(now), DURATION),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn an_expiry_past_the_end_of_time_never_comes() {
        let spec = LeaseSpec {
            holder_identity: Some("b".into()),
            renew_time: Some(MicroTime(Timestamp::MAX)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert_eq!(
            decide(Some(&spec), ME, Timestamp::MAX, DURATION),
            follow("b")
        );
    }

    #[test]
    fn claim_table() {
        let now = at(20);
        let other = held(Some("b"), Some(0), Some(15));
        let ours = LeaseSpec {
            acquire_time: Some(MicroTime(at(-100))),
            ..held(Some(ME), Some(10), Some(15))
        };
        // (case, current, decision, expected acquireTime, expected leaseTransitions)
        let cases = [
            ("create", None, Decision::Create, Some(now), Some(0)),
            (
                "renew keeps acquireTime",
                Some(&ours),
                Decision::Renew,
                Some(at(-100)),
                Some(4),
            ),
            (
                "take over counts a transition",
                Some(&other),
                Decision::TakeOver,
                Some(now),
                Some(5),
            ),
        ];
        for (case, current, decision, acquired, transitions) in cases {
            let spec = claim(current, &decision, ME, now, Duration::from_millis(2500)).unwrap();
            assert_eq!(spec.holder_identity.as_deref(), Some(ME), "{case}");
            assert_eq!(spec.renew_time, Some(MicroTime(now)), "{case}");
            assert_eq!(spec.lease_duration_seconds, Some(3), "{case}: rounded up");
            assert_eq!(spec.acquire_time.map(|t| t.0), acquired, "{case}");
            assert_eq!(spec.lease_transitions, transitions, "{case}");
        }
        assert_eq!(claim(Some(&other), &follow("b"), ME, now, DURATION), None);
    }

    #[test]
    fn a_released_lease_is_taken_over_at_once() {
        let ours = claim(None, &Decision::Create, ME, at(0), DURATION).unwrap();
        let spec = released(&ours, at(1));
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.renew_time, Some(MicroTime(at(1))));
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.lease_transitions, ours.lease_transitions);
        assert_eq!(
            decide(Some(&spec), "b", at(1), DURATION),
            Decision::TakeOver
        );
    }

    #[test]
    fn whole_seconds_round_up_and_stay_positive() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(3), 3),
            (Duration::from_millis(3001), 4),
            (Duration::from_secs(u64::MAX), i32::MAX),
        ];
        for (duration, seconds) in cases {
            assert_eq!(whole_seconds(duration), seconds, "{duration:?}");
        }
    }

    #[test]
    fn default_identity_is_never_empty() {
        assert!(!default_identity().is_empty());
    }
}
