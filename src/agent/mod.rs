//! The agent (DESIGN.md §6): runs inside a pivoted workload cluster, reads its cluster's spec
//! from git and converges the CAPI objects and add-ons in its own API server with the same
//! engine `cairn apply` uses. It never needs the management cluster. When the source is
//! unreachable it keeps applying the last good revision and says the source is stale; when a
//! new revision does not render, it keeps the last good one and reports the errors.

pub mod config;

use std::path::PathBuf;
use std::time::Duration;

use crate::apply::api::{ClusterApi, KubeClusterApi};
use crate::apply::groups::as_pivoted;
use crate::lifecycle::cluster::{apply_addons, converge_capi, provision};
use crate::lifecycle::phase::{desired_hash, record_phase};
use crate::lifecycle::record::{AgentStatus, write_status};
use crate::lifecycle::{ApplyOptions, ClusterError, ClusterReport, Phase};
use crate::model::diag::{Diagnostic, errors_text};
use crate::pivot::checks::is_paused;
use crate::render::{Bundle, render_repo};
use crate::source::{Mirror, SourceSpec};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub cluster: String,
    /// The config file; `None`: the `cairn-agent-config` ConfigMap.
    pub config_file: Option<PathBuf>,
    /// Overrides the config's source URL and branch.
    pub source_url: Option<String>,
    pub branch: Option<String>,
    pub poll_interval: Duration,
    /// Where the git mirror lives.
    pub state_dir: PathBuf,
    /// Longest wait for any one step of a pass.
    pub timeout: Duration,
    pub prune: bool,
}

/// The last revision that rendered.
struct Good {
    revision: String,
    bundle: Bundle,
}

pub struct Agent {
    api: KubeClusterApi,
    opts: AgentOptions,
    mirror: Option<(SourceSpec, Mirror)>,
    good: Option<Good>,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Agent {
    pub fn new(api: KubeClusterApi, opts: AgentOptions) -> Agent {
        Agent {
            api,
            opts,
            mirror: None,
            good: None,
        }
    }

    /// Passes until `shutdown` resolves, one every poll interval.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let status = self.pass().await;
            match &status.last_error {
                Some(e) => {
                    tracing::warn!(cluster = %self.opts.cluster, phase = %status.phase, "{e}")
                }
                None => {
                    tracing::info!(cluster = %self.opts.cluster, phase = %status.phase, revision = %status.revision, "pass done")
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.opts.poll_interval) => {}
            }
        }
    }

    /// One pass: fetch, render, converge, record. Never fails: what went wrong is recorded.
    pub async fn pass(&mut self) -> AgentStatus {
        let mut status = AgentStatus {
            phase: "Failed".into(),
            ..AgentStatus::default()
        };
        if let Err(e) = self.refresh(&mut status).await {
            status.last_error = Some(e);
        }
        if let Some(good) = &self.good {
            status.revision = good.revision.clone();
            match self.converge(&mut status).await {
                Ok(()) => {}
                Err(e) => status.last_error = Some(crate::errors::chain(&e)),
            }
        }
        status.last_sync = now();
        if let Err(e) = write_status(self.api.dynamic(), &self.opts.cluster, &status).await {
            tracing::warn!(cluster = %self.opts.cluster, "cannot record the agent status: {}", crate::errors::chain(&e));
        }
        status
    }

    /// Fetches the source and renders a new revision; errors keep the last good one.
    async fn refresh(&mut self, status: &mut AgentStatus) -> Result<(), String> {
        let config = config::load(&self.api, self.opts.config_file.as_deref())
            .await
            .map_err(|e| crate::errors::chain(&e))?;
        let url = self
            .opts
            .source_url
            .clone()
            .unwrap_or(config.source.url.clone());
        let branch = self
            .opts
            .branch
            .clone()
            .unwrap_or_else(|| config.source.branch.clone());
        if url.is_empty() {
            return Err(
                "no git source: the agent config names no URL (fleet.yaml spec.source.url)".into(),
            );
        }
        let spec = SourceSpec {
            url,
            branch: if branch.is_empty() {
                "main".into()
            } else {
                branch
            },
            credentials: config::credentials(&config.source),
        };
        let state_dir = self.opts.state_dir.clone();
        let reopen = self
            .mirror
            .as_ref()
            .is_none_or(|(open, _)| open.url != spec.url || open.branch != spec.branch);
        if reopen {
            let mirror = tokio::task::block_in_place(|| Mirror::open(&spec, &state_dir))
                .map_err(|e| crate::errors::chain(&e))?;
            self.mirror = Some((spec, mirror));
        }
        let Some((_, mirror)) = &self.mirror else {
            return Ok(());
        };
        status.source_url = mirror.display_url();
        let revision = match tokio::task::block_in_place(|| mirror.fetch()) {
            Ok(revision) => revision,
            Err(e) => {
                status.source_stale = true;
                let why = crate::errors::chain(&e);
                let last = mirror.last_fetched().ok_or_else(|| why.clone())?;
                status.last_error = Some(format!("source unreachable, keeping {last}: {why}"));
                last
            }
        };
        if self.good.as_ref().is_some_and(|g| g.revision == revision) {
            return Ok(());
        }
        let snapshot = tokio::task::block_in_place(|| mirror.snapshot(&revision))
            .map_err(|e| crate::errors::chain(&e))?;
        let rendered = render_repo(&snapshot, std::slice::from_ref(&self.opts.cluster));
        match rendered.bundles.into_iter().next() {
            Some(bundle) if !rendered.diagnostics.iter().any(Diagnostic::is_error) => {
                tracing::info!(cluster = %self.opts.cluster, %revision, "rendered a new revision");
                self.good = Some(Good {
                    revision,
                    bundle: as_pivoted(&bundle),
                });
                Ok(())
            }
            _ => Err(format!(
                "revision {revision} does not render, keeping the last good one: {}",
                errors_text(&rendered.diagnostics, "; ").unwrap_or_default()
            )),
        }
    }

    /// Converges the cluster to the last good bundle, once its CAPI objects are here and
    /// unpaused (before and during the pivot there is nothing for the agent to do).
    async fn converge(&self, status: &mut AgentStatus) -> Result<(), ClusterError> {
        let Some(good) = &self.good else {
            return Ok(());
        };
        let live = self
            .api
            .get(&crate::render::capi::cluster_ref(&self.opts.cluster))
            .await
            .map_err(|source| ClusterError::Api {
                step: "read the Cluster",
                source,
            })?;
        status.desired_hash = desired_hash(&good.bundle);
        match live {
            None => {
                status.phase = "WaitingForPivot".into();
                return Ok(());
            }
            Some(cluster) if is_paused(&cluster) => {
                status.phase = "Pivoting".into();
                return Ok(());
            }
            Some(_) => status.phase = Phase::Converging.as_str().into(),
        }
        let mut opts = ApplyOptions::new(self.opts.prune, self.opts.timeout, good.revision.clone());
        opts.progress =
            std::sync::Arc::new(|cluster, step| tracing::info!("cluster {cluster}: {step}"));
        let mut report = ClusterReport::default();
        provision(&self.api, &good.bundle, &opts, false, &mut report).await?;
        converge_capi(&self.api, &good.bundle, &opts, false, &mut report).await?;
        apply_addons(&self.api, &good.bundle, &opts, &mut report).await?;
        record_phase(&self.api, &good.bundle, Phase::Ready, &opts).await?;
        status.phase = Phase::Ready.as_str().into();
        if !status.source_stale {
            status.last_error = None;
        }
        Ok(())
    }
}
