//! The controller's Prometheus metrics, served on `/metrics` in the OpenMetrics text format.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    cluster: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    result: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Histogram,
    clusters: Family<PhaseLabels, Gauge>,
    revision: Family<RevisionLabels, Gauge>,
    fetch_errors: Counter,
    source_stale: Gauge,
    webhooks: Family<WebhookLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        // 0.1 s to ~55 min: a converged cluster's check to a full pivot.
        let duration = Histogram::new(exponential_buckets(0.1, 2.0, 16));
        let clusters = Family::<PhaseLabels, Gauge>::default();
        let revision = Family::<RevisionLabels, Gauge>::default();
        let fetch_errors = Counter::default();
        let source_stale = Gauge::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "cairn_reconciles",
            "Cluster reconciles by cluster and result (success, failure)",
            reconciles.clone(),
        );
        registry.register_with_unit(
            "cairn_reconcile_duration",
            "Time to reconcile one cluster",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "cairn_clusters",
            "Clusters by controller phase (Pending, Reconciling, Ready, Failed, Deleting)",
            clusters.clone(),
        );
        registry.register(
            "cairn_source_revision",
            "The git revision being reconciled (value 1, the revision as a label)",
            revision.clone(),
        );
        registry.register(
            "cairn_source_fetch_errors",
            "Failed fetches of the git source",
            fetch_errors.clone(),
        );
        registry.register(
            "cairn_source_stale",
            "1 when the last fetch failed and the last good revision is being kept",
            source_stale.clone(),
        );
        registry.register(
            "cairn_webhook_requests",
            "Webhook requests by provider and result (accepted, ignored, ping, unauthorized, bad_request)",
            webhooks.clone(),
        );
        registry.register(
            "cairn_leader",
            "1 while this replica holds the lease and reconciles",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            clusters,
            revision,
            fetch_errors,
            source_stale,
            webhooks,
            leader,
        }
    }

    pub fn reconciled(&self, cluster: &str, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                cluster: cluster.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Replaces the phase counts (phases with no cluster disappear).
    pub fn phases(&self, counts: &BTreeMap<String, i64>) {
        self.clusters.clear();
        for (phase, n) in counts {
            self.clusters
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .set(*n);
        }
    }

    pub fn fetched(&self, revision: &str) {
        self.revision.clear();
        self.revision
            .get_or_create(&RevisionLabels {
                revision: revision.to_string(),
            })
            .set(1);
        self.source_stale.set(0);
    }

    pub fn fetch_failed(&self) {
        self.fetch_errors.inc();
        self.source_stale.set(1);
    }

    pub fn webhook(&self, provider: &str, result: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_its_labels() {
        let m = Metrics::new();
        m.reconciled("prod-1", true, Duration::from_millis(300));
        m.reconciled("prod-1", false, Duration::from_secs(2));
        m.phases(&BTreeMap::from([
            ("Ready".to_string(), 2),
            ("Failed".into(), 1),
        ]));
        m.fetched("abc123");
        m.fetch_failed();
        m.webhook("github", "unauthorized");
        m.leading(true);
        let text = m.encode();
        for line in [
            r#"cairn_reconciles_total{cluster="prod-1",result="success"} 1"#,
            r#"cairn_reconciles_total{cluster="prod-1",result="failure"} 1"#,
            "cairn_reconcile_duration_seconds_count 2",
            r#"cairn_clusters{phase="Ready"} 2"#,
            r#"cairn_clusters{phase="Failed"} 1"#,
            r#"cairn_source_revision{revision="abc123"} 1"#,
            "cairn_source_fetch_errors_total 1",
            "cairn_source_stale 1",
            r#"cairn_webhook_requests_total{provider="github",result="unauthorized"} 1"#,
            "cairn_leader 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        m.phases(&BTreeMap::from([("Ready".to_string(), 3)]));
        assert!(!m.encode().contains(r#"phase="Failed""#));
    }
}
