//! Leader election against a real kube-apiserver: one leader among candidates, takeover after a
//! crash once the Lease expires, immediate handover on graceful shutdown, stepping down when the
//! API server is gone, and a clear error when the namespace is missing.

mod env;

use std::time::Duration;

use cairn::controller::leader::{Elector, LeaderError, LeaseConfig};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NAMESPACE: &str = "cairn-system";
const LEASE: &str = "cairn-leader";
const LEASE_DURATION: Duration = Duration::from_secs(3);
const RENEW_PERIOD: Duration = Duration::from_millis(500);
/// Generous on a loaded 2-core machine; the protocol bound is lease_duration + 2 renew periods.
const SLACK: Duration = Duration::from_secs(3);

struct Candidate {
    identity: String,
    leading: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LeaderError>>,
}

fn candidate(client: &kube::Client, namespace: &str, identity: &str) -> Candidate {
    let config = LeaseConfig {
        lease_duration: LEASE_DURATION,
        renew_period: RENEW_PERIOD,
        ..LeaseConfig::new(namespace, LEASE, identity)
    };
    let (publish, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel::<()>();
    let elector = Elector::new(client.clone(), config);
    let task = tokio::spawn(elector.run(publish, async {
        let _ = stopped.await;
    }));
    Candidate {
        identity: identity.to_string(),
        leading,
        stop,
        task,
    }
}

/// Waits until `candidate` publishes `leading`, returning how long that took.
async fn until_leading(candidate: &mut Candidate, leading: bool, within: Duration) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(within, candidate.leading.wait_for(|l| *l == leading))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} leading={leading} not within {within:?}",
                candidate.identity
            )
        })
        .expect("the elector is running");
    started.elapsed()
}

async fn lease_spec(leases: &Api<Lease>) -> LeaseSpec {
    leases.get(LEASE).await.unwrap().spec.unwrap()
}

fn is_leading(candidate: &Candidate) -> bool {
    *candidate.leading.borrow()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_takes_over_after_a_crash_and_at_once_after_a_release() {
    let root = tempfile::tempdir().unwrap();
    let mut mgmt = env::start("mgmt", root.path()).await;
    let client = mgmt.client().await.unwrap();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let leases = Api::<Lease>::namespaced(client.clone(), NAMESPACE);

    // 1. Two candidates: exactly one leads, and the Lease names it.
    let mut a = candidate(&client, NAMESPACE, "cairn-a");
    let mut b = candidate(&client, NAMESPACE, "cairn-b");
    tokio::time::timeout(Duration::from_secs(20), async {
        while !is_leading(&a) && !is_leading(&b) {
            tokio::select! {
                _ = a.leading.changed() => {}
                _ = b.leading.changed() => {}
            }
        }
    })
    .await
    .expect("a leader within 20s");
    // Several renew periods, sampled often: never two leaders, never none.
    for _ in 0..30 {
        assert!(is_leading(&a) ^ is_leading(&b), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut leader, mut follower) = if is_leading(&a) { (a, b) } else { (b, a) };
    let first = lease_spec(&leases).await;
    assert_eq!(
        first.holder_identity.as_deref(),
        Some(leader.identity.as_str())
    );
    assert_eq!(first.lease_duration_seconds, Some(3));

    // 2. The leader crashes without releasing: the follower waits for the Lease to expire.
    let before_crash = lease_spec(&leases).await;
    leader.task.abort();
    let crashed = Instant::now();
    until_leading(&mut follower, true, LEASE_DURATION + SLACK).await;
    let takeover = crashed.elapsed();
    println!(
        "takeover after a crash: {takeover:?} (lease {LEASE_DURATION:?}, renew {RENEW_PERIOD:?})"
    );
    assert!(takeover <= LEASE_DURATION + SLACK, "{takeover:?}");
    let taken = lease_spec(&leases).await;
    assert_eq!(
        taken.holder_identity.as_deref(),
        Some(follower.identity.as_str())
    );
    assert_eq!(
        taken.lease_transitions,
        before_crash.lease_transitions.map(|t| t + 1)
    );
    // Safety: the follower took over only after the crashed leader's Lease had expired.
    let expired_at = before_crash.renew_time.unwrap().0 + LEASE_DURATION;
    assert!(
        taken.acquire_time.clone().unwrap().0 > expired_at,
        "acquired at {:?}, before the expiry {expired_at}",
        taken.acquire_time
    );
    (leader, follower) = (follower, leader);
    drop(follower);

    // 3. Graceful shutdown: the leader releases the Lease and a waiting follower takes it at
    // once. A watch records every version of the Lease, to see the release itself.
    let mut c = candidate(&client, NAMESPACE, "cairn-c");
    tokio::time::sleep(4 * RENEW_PERIOD).await;
    assert!(!is_leading(&c), "c follows while {} leads", leader.identity);
    let version = leases
        .get(LEASE)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let watched = WatchParams::default().fields(&format!("metadata.name={LEASE}"));
    let mut versions = leases.watch(&watched, &version).await.unwrap().boxed();
    let _ = leader.stop.send(());
    let stopping = Instant::now();
    until_leading(&mut c, true, LEASE_DURATION + SLACK).await;
    let handover = stopping.elapsed();
    println!("handover after a graceful shutdown: {handover:?} (lease {LEASE_DURATION:?})");
    assert!(handover < LEASE_DURATION, "{handover:?}");
    let stopped = tokio::time::timeout(Duration::from_secs(10), leader.task)
        .await
        .expect("the leader stops promptly");
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    assert!(!*leader.leading.borrow(), "a stopped leader does not lead");
    let mut holders = Vec::new();
    while holders.last() != Some(&Some(c.identity.clone())) {
        let event = tokio::time::timeout(Duration::from_secs(10), versions.next())
            .await
            .expect("the watch shows c taking over")
            .expect("the watch is open")
            .unwrap();
        if let WatchEvent::Modified(lease) = event {
            let spec = lease.spec.unwrap();
            if spec.holder_identity.is_none() {
                assert_eq!(
                    spec.lease_duration_seconds,
                    Some(1),
                    "released as client-go does"
                );
            }
            holders.push(spec.holder_identity);
        }
    }
    let released = holders.iter().position(Option::is_none);
    let taken = holders.len() - 1;
    assert!(
        released.is_some_and(|r| r < taken),
        "the Lease is released before c takes it: {holders:?}"
    );

    // 4. The API server goes away: the leader keeps leading while it retries, then steps down
    // one renew period before its Lease expires (2.5s after its last renewal, which was sent
    // before the stop), since a follower that can still reach the API server may take over.
    mgmt.stop_apiserver();
    let down = Instant::now();
    until_leading(&mut c, false, LEASE_DURATION + SLACK).await;
    let step_down = down.elapsed();
    println!("step down without an API server: {step_down:?} (lease {LEASE_DURATION:?})");
    assert!(
        step_down >= Duration::from_secs(1),
        "{step_down:?}: not at the first failure"
    );
    let _ = c.stop.send(());
    let stopped = tokio::time::timeout(LEASE_DURATION + SLACK, c.task)
        .await
        .expect("a follower stops promptly even without an API server");
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_an_error_naming_the_lease() {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::start("mgmt", root.path()).await;
    let client = mgmt.client().await.unwrap();
    let mut lonely = candidate(&client, "absent", "cairn-a");
    let result = tokio::time::timeout(Duration::from_secs(20), &mut lonely.task)
        .await
        .expect("the elector gives up at once")
        .unwrap();
    let error = result.expect_err("no namespace, no Lease").to_string();
    assert!(error.contains("Lease absent/cairn-leader"), "{error}");
    assert!(error.contains("namespace absent does not exist"), "{error}");
    assert!(!*lonely.leading.borrow());
}
