//! I/O: one cluster's move between two API servers, step by step (see `steps`), with
//! `clusterctl move` semantics and a journal on the Cluster so a run killed anywhere resumes.
//!
//! Resuming relies on every step being harmless to repeat: creating an object that exists
//! replaces it (keeping its uid), deleting one that is gone is a no-op, and discovery is
//! redone from what the source still holds (deletion goes deepest group first, so what is left
//! is always whole up to the Cluster).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::checks::{DELETE_FOR_MOVE_ANNOTATION, blocking, is_paused, unprovisioned, unserved};
use super::copy::target_copy;
use super::discover::{Discovered, discover, provider_crds};
use super::providers;
use super::steps::{AfterStep, Direction, JOURNAL_ANNOTATION, Journal, Step};
use crate::apply::api::{ApiError, ClusterApi};
use crate::apply::health::Health;
use crate::apply::progress::Progress;
use crate::apply::wait::{WaitError, wait_until};
use crate::diff::key::ObjectKey;
use crate::render::capi::{cluster_ref, kubeconfig_secret, kubeconfig_secret_name};
use crate::render::finalize::{CLUSTER_LABEL, CREATED_NAMESPACE_ANNOTATION};
use crate::render::kinds::object_ref;
use crate::render::pivot::AGENT_NAMESPACE;

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{step}")]
    Api {
        step: &'static str,
        #[source]
        source: Box<ApiError>,
    },
    #[error("{step}")]
    Wait {
        step: &'static str,
        #[source]
        source: Box<WaitError>,
    },
    #[error(
        "Cluster {cluster}/{cluster} exists in neither the {source_side} nor the {target_side} cluster\n  help: \
         check the name; `cairn status` lists the clusters and where their CAPI objects live"
    )]
    NotFound {
        cluster: String,
        source_side: &'static str,
        target_side: &'static str,
    },
    #[error(
        "Cluster {cluster}/{cluster} exists in both clusters and no move is in progress\n  help: one copy was \
         made by something other than cairn; delete the stale one before moving"
    )]
    InBoth { cluster: String },
    #[error(
        "Cluster {cluster}/{cluster} is paused, and not by cairn\n  help: cairn does not move a cluster someone \
         else paused (clusterctl refuses too); unpause it with `kubectl patch cluster -n {cluster} {cluster} \
         --type merge -p '{{\"spec\":{{\"paused\":null}}}}'` and rerun"
    )]
    PausedByOther { cluster: String },
    #[error(
        "a {in_progress} move of Cluster {cluster}/{cluster} is in progress\n  help: finish it first: `cairn pivot \
         {cluster}{flag}`"
    )]
    OtherDirection {
        cluster: String,
        in_progress: &'static str,
        flag: &'static str,
    },
    #[error(
        "Cluster {cluster}/{cluster}: {detail}\n  help: remove the annotation only if no move is running"
    )]
    Journal { cluster: String, detail: String },
    #[error(
        "the source is not ready to move:\n{}\n  help: wait until the cluster is provisioned (`cairn apply` waits for it) and rerun",
        .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    NotProvisioned { problems: Vec<String> },
    #[error(
        "the target does not serve these kinds:\n{}\n  help: install their CRDs in the target (cairn copies the ones labelled \
         clusterctl.cluster.x-k8s.io from the source)",
        .kinds.iter().map(|k| format!("  - {k}")).collect::<Vec<_>>().join("\n")
    )]
    MissingKinds { kinds: Vec<String> },
    #[error(
        "the target's providers are older than the source's:\n{}\n  help: upgrade them in the target first \
         (clusterctl upgrade, or the fleet's `spec.providers`); a move never downgrades a provider",
        .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    OlderProviders { problems: Vec<String> },
    #[error(
        "these objects can never be placed, so nothing was moved:\n{}\n  help: break the ownerReference cycle",
        .objects.iter().map(|o| format!("  - {o}")).collect::<Vec<_>>().join("\n")
    )]
    Unplaceable { objects: Vec<String> },
    #[error(
        "cannot keep a copy of the workload kubeconfig: Secret {cluster}/{cluster}-kubeconfig {problem}\n  help: the \
         control plane writes it once it is initialized; wait for it and rerun"
    )]
    Kubeconfig {
        cluster: String,
        problem: &'static str,
    },
}

fn api(step: &'static str) -> impl FnOnce(ApiError) -> MoveError {
    move |source| MoveError::Api {
        step,
        source: Box::new(source),
    }
}

/// How a move runs.
#[derive(Clone)]
pub struct MoveOptions {
    /// Longest wait for CRDs to be established and for `block-move` to clear.
    pub timeout: Duration,
    pub progress: Progress,
    /// Called right after each step is journaled (the CLI's `CAIRN_FAULT_AFTER` ends the
    /// process there, to prove that a rerun converges from any step).
    pub after_step: Option<AfterStep>,
}

/// What a move did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MoveReport {
    pub cluster: String,
    /// The step a previous run had reached, when this one resumed.
    pub resumed_after: Option<String>,
    pub created: usize,
    pub deleted: usize,
    pub groups: usize,
    /// Nothing to do: the CAPI objects already were in the target.
    pub already_moved: bool,
    pub seconds: f64,
}

/// One move of one cluster: the objects go from `source` to `target`.
pub struct Mover<'a, A> {
    pub source: &'a A,
    pub target: &'a A,
    pub direction: Direction,
    pub cluster: &'a str,
    pub opts: MoveOptions,
}

fn kind_of(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

fn journal_patch(journal: Option<Journal>) -> Value {
    json!({"metadata": {"annotations": {JOURNAL_ANNOTATION: journal.map(Journal::to_annotation)}}})
}

impl<A: ClusterApi> Mover<'_, A> {
    fn sides(&self) -> (&'static str, &'static str) {
        match self.direction {
            Direction::Forward => ("management", "workload"),
            Direction::Reverse => ("workload", "management"),
        }
    }

    /// The management side, where the kubeconfig copy lives.
    fn management(&self) -> &A {
        match self.direction {
            Direction::Forward => self.source,
            Direction::Reverse => self.target,
        }
    }

    fn journal_of(&self, cluster: &Value) -> Result<Option<Journal>, MoveError> {
        Journal::of(cluster).map_err(|detail| MoveError::Journal {
            cluster: self.cluster.to_string(),
            detail,
        })
    }

    /// Marks `step` done in the journal on `side`, reports it, and calls the after-step hook.
    async fn done(&self, side: &A, step: Step) -> Result<(), MoveError> {
        let journal = Journal {
            direction: self.direction,
            step,
        };
        let patch = if step == Step::Finish {
            journal_patch(None)
        } else {
            journal_patch(Some(journal))
        };
        side.merge_patch(&cluster_ref(self.cluster), &patch)
            .await
            .map_err(api("record the pivot journal"))?;
        (self.opts.progress)(self.cluster, &format!("pivot: {} done", step.name()));
        if let Some(after_step) = &self.opts.after_step {
            after_step(step);
        }
        Ok(())
    }

    /// Moves the cluster, or finishes a move a previous run began.
    pub async fn run(&self) -> Result<MoveReport, MoveError> {
        let start = Instant::now();
        let stub = cluster_ref(self.cluster);
        let in_source = self
            .source
            .get(&stub)
            .await
            .map_err(api("read the source Cluster"))?;
        // A target without the CAPI CRDs yet (before install-providers) has no Cluster.
        let in_target = match self.target.get(&stub).await {
            Err(ApiError::Kube(crate::kube_client::KubeError::UnknownKind { .. })) => None,
            other => other.map_err(api("read the target Cluster"))?,
        };
        let mut report = MoveReport {
            cluster: self.cluster.to_string(),
            ..MoveReport::default()
        };
        let target_journal = match &in_target {
            Some(t) => self.journal_of(t)?,
            None => None,
        };
        let source_journal = match &in_source {
            Some(s) => self.journal_of(s)?,
            None => None,
        };
        for journal in [source_journal, target_journal].into_iter().flatten() {
            if journal.direction != self.direction {
                return Err(MoveError::OtherDirection {
                    cluster: self.cluster.to_string(),
                    in_progress: journal.direction.as_str(),
                    flag: match journal.direction {
                        Direction::Forward => "",
                        Direction::Reverse => " --reverse",
                    },
                });
            }
        }
        let (source_side, target_side) = self.sides();
        if let Some(handed_over) = target_journal {
            report.resumed_after = Some(handed_over.step.name().to_string());
            self.finish(Some(handed_over), &mut report).await?;
        } else if let Some(source) = &in_source {
            if source_journal.is_none() && in_target.is_some() {
                return Err(MoveError::InBoth {
                    cluster: self.cluster.to_string(),
                });
            }
            if source_journal.is_none() && is_paused(source) {
                return Err(MoveError::PausedByOther {
                    cluster: self.cluster.to_string(),
                });
            }
            report.resumed_after = source_journal.map(|j| j.step.name().to_string());
            self.copy(source_journal, &mut report).await?;
            self.finish(None, &mut report).await?;
        } else if in_target.is_some() {
            report.already_moved = true;
        } else {
            return Err(MoveError::NotFound {
                cluster: self.cluster.to_string(),
                source_side,
                target_side,
            });
        }
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Everything up to and including the hand-over.
    async fn copy(
        &self,
        journal: Option<Journal>,
        report: &mut MoveReport,
    ) -> Result<(), MoveError> {
        let pending = |step| Journal::pending(journal, step);
        if pending(Step::Start) {
            self.done(self.source, Step::Start).await?;
        }
        if pending(Step::InstallProviders) {
            self.install_providers().await?;
            self.done(self.source, Step::InstallProviders).await?;
        }
        let discovered = self.discover_source().await?;
        if pending(Step::Check) {
            self.check(&discovered).await?;
            self.done(self.source, Step::Check).await?;
        }
        if pending(Step::KeepKubeconfig) {
            self.keep_kubeconfig().await?;
            self.done(self.source, Step::KeepKubeconfig).await?;
        }
        if pending(Step::Pause) {
            self.source
                .merge_patch(&discovered.cluster, &json!({"spec": {"paused": true}}))
                .await
                .map_err(api("pause the source Cluster"))?;
            self.done(self.source, Step::Pause).await?;
        }
        if pending(Step::WaitBlockMove) {
            self.wait_block_move(&discovered).await?;
            self.done(self.source, Step::WaitBlockMove).await?;
        }
        // Read again now that the source is paused: what was read before may have changed
        // since (and would arrive unpaused). Creating is repeated in full on a resume: every
        // object is created or replaced, so the owners' uids in the target are known again.
        let discovered = self.discover_source().await?;
        report.created = self
            .create(&discovered, pending(Step::CreateFirstGroup))
            .await?;
        report.groups = discovered.sequence.groups.len();
        self.done(self.source, Step::Create).await?;
        self.done(self.target, Step::HandOver).await
    }

    async fn discover_source(&self) -> Result<Discovered, MoveError> {
        let discovered = discover(self.source, self.cluster)
            .await
            .map_err(api("discover the objects to move"))?
            .ok_or_else(|| {
                let (source_side, target_side) = self.sides();
                MoveError::NotFound {
                    cluster: self.cluster.to_string(),
                    source_side,
                    target_side,
                }
            })?;
        if !discovered.sequence.unplaceable.is_empty() {
            return Err(MoveError::Unplaceable {
                objects: discovered
                    .sequence
                    .unplaceable
                    .iter()
                    .map(|(key, why)| format!("{key}: {why}"))
                    .collect(),
            });
        }
        Ok(discovered)
    }

    /// The source's provider components (cert-manager's, the providers', their inventory and
    /// credentials) installed in the target where it lacks them, cert-manager first and
    /// Available, then the providers, their CRDs established, every provider Deployment
    /// Available and the webhooks admitting CAPI objects: after the move the CAPI controllers
    /// in the target take the cluster over.
    async fn install_providers(&self) -> Result<(), MoveError> {
        let wanted = providers::inventory(self.source)
            .await
            .map_err(api("read the source's provider inventory"))?;
        let have = providers::inventory(self.target)
            .await
            .map_err(api("read the target's provider inventory"))?;
        let problems = providers::older_in_target(&wanted, &have);
        if !problems.is_empty() {
            return Err(MoveError::OlderProviders { problems });
        }
        let components = providers::components(self.source)
            .await
            .map_err(api("read the source's provider components"))?;
        for phase in providers::install_phases(&components) {
            let crds: Vec<Value> = self.install_missing(&phase.definitions).await?;
            self.wait(&crds, phase.establish_step).await?;
            self.install_missing(&phase.rest).await?;
            let deployments: Vec<Value> =
                phase.deployments().map(providers::component_copy).collect();
            self.wait(&deployments, phase.deployments_step).await?;
        }
        self.wait_admitted().await
    }

    /// Creates the components the target does not have, in order; returns the CRDs among them.
    /// What the target has belongs to whoever installed it there (clusterctl init, an earlier
    /// move), and a move is no time to change it.
    async fn install_missing(&self, components: &[&Value]) -> Result<Vec<Value>, MoveError> {
        let mut crds = Vec::new();
        for obj in components {
            let copy = providers::component_copy(obj);
            let exists = self
                .target
                .get(&copy)
                .await
                .map_err(api("read the target's provider components"))?
                .is_some();
            if !exists {
                self.target
                    .apply(&copy)
                    .await
                    .map_err(api("install the provider components"))?;
            }
            if kind_of(&copy) == "CustomResourceDefinition" {
                crds.push(copy);
            }
        }
        Ok(crds)
    }

    async fn wait(&self, objects: &[Value], step: &'static str) -> Result<(), MoveError> {
        wait_until(
            self.target,
            objects,
            self.opts.timeout,
            crate::apply::health::health,
        )
        .await
        .map_err(|source| MoveError::Wait {
            step,
            source: Box::new(source),
        })
    }

    /// Waits until the target admits a CAPI object: a dry-run create of a Cluster in the
    /// cluster's own namespace (created as the move would create it: only there may cairn write)
    /// passes its defaulting and validating webhooks (served by the Deployments just waited
    /// for; a webhook whose Service has no ready endpoint yet fails).
    async fn wait_admitted(&self) -> Result<(), MoveError> {
        let probe = json!({
            "apiVersion": crate::render::capi::CLUSTER_API, "kind": "Cluster",
            "metadata": {"name": "cairn-admission-probe", "namespace": self.cluster},
            "spec": {"paused": true},
        });
        ensure_namespace(self.target, self.cluster, Some(self.cluster))
            .await
            .map_err(api("create the namespace in the target"))?;
        let start = Instant::now();
        loop {
            match self.target.dry_run(&probe).await {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() < self.opts.timeout => {
                    tracing::debug!(cluster = self.cluster, error = %crate::errors::chain(&e), "webhooks not admitting yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(api("wait for the provider webhooks to admit a Cluster")(e)),
            }
        }
    }

    async fn check(&self, discovered: &Discovered) -> Result<(), MoveError> {
        let crds = provider_crds(self.target)
            .await
            .map_err(api("read the target's CRDs"))?;
        let kinds = discovered
            .types
            .iter()
            .map(|t| (t.api_version.as_str(), t.kind.as_str()));
        let missing = unserved(kinds, &crds);
        if !missing.is_empty() {
            return Err(MoveError::MissingKinds { kinds: missing });
        }
        let problems = unprovisioned(&discovered.cluster, &discovered.machines());
        if !problems.is_empty() {
            return Err(MoveError::NotProvisioned { problems });
        }
        Ok(())
    }

    /// Copies `<cluster>-kubeconfig` to `cairn-system` in the management cluster, so cairn can
    /// reach the cluster once its CAPI objects (and that Secret) have left.
    async fn keep_kubeconfig(&self) -> Result<(), MoveError> {
        let secret = kubeconfig_secret(self.cluster, self.cluster);
        let problem = |problem| MoveError::Kubeconfig {
            cluster: self.cluster.to_string(),
            problem,
        };
        let live = self
            .source
            .get(&secret)
            .await
            .map_err(api("read the workload kubeconfig"))?
            .ok_or_else(|| problem("does not exist"))?;
        let value = live
            .pointer("/data/value")
            .and_then(Value::as_str)
            .ok_or_else(|| problem("has no `value` key"))?;
        let mgmt = self.management();
        ensure_namespace(mgmt, AGENT_NAMESPACE, None)
            .await
            .map_err(api("create the cairn-system namespace"))?;
        mgmt.apply(&kubeconfig_copy(self.cluster, value))
            .await
            .map_err(api("keep a copy of the workload kubeconfig"))?;
        Ok(())
    }

    async fn wait_block_move(&self, discovered: &Discovered) -> Result<(), MoveError> {
        let objects: Vec<Value> = discovered.objects.values().cloned().collect();
        let blocked = blocking(&objects);
        if blocked.is_empty() {
            return Ok(());
        }
        (self.opts.progress)(
            self.cluster,
            &format!(
                "pivot: waiting for {} to drop block-move",
                blocked.join(", ")
            ),
        );
        wait_until(self.source, &objects, self.opts.timeout, |live| {
            if blocking(std::slice::from_ref(live)).is_empty() {
                Health::Ready
            } else {
                Health::InProgress(format!("carries {}", super::checks::BLOCK_MOVE_ANNOTATION))
            }
        })
        .await
        .map_err(|source| MoveError::Wait {
            step: "wait for block-move to clear",
            source: Box::new(source),
        })
    }

    /// Creates every object in the target, group by group; returns how many.
    async fn create(
        &self,
        discovered: &Discovered,
        journal_first: bool,
    ) -> Result<usize, MoveError> {
        ensure_namespace(self.target, self.cluster, Some(self.cluster))
            .await
            .map_err(api("create the namespace in the target"))?;
        let mut uids: HashMap<ObjectKey, String> = HashMap::new();
        let mut created = 0;
        for (i, group) in discovered.groups().enumerate() {
            for obj in group {
                let copy = target_copy(obj, |owner| uids.get(owner).cloned());
                let live = self
                    .target
                    .create_or_replace(&copy)
                    .await
                    .map_err(api("create in the target"))?;
                self.keep_field_owners(obj).await?;
                let uid = live
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                uids.insert(ObjectKey::of(obj), uid);
                created += 1;
            }
            if i == 0 && journal_first {
                self.done(self.source, Step::CreateFirstGroup).await?;
            }
        }
        Ok(created)
    }

    /// A create records its own field manager for every field, whatever the request says; the
    /// source's owners are put back with a patch (as clusterctl does), or after a pivot the
    /// mover would co-own every field and a field removed from git would never be removed.
    async fn keep_field_owners(&self, source_obj: &Value) -> Result<(), MoveError> {
        let Some(owners) = source_obj
            .pointer("/metadata/managedFields")
            .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        else {
            return Ok(());
        };
        let patch = json!({"metadata": {"managedFields": owners}});
        self.target
            .merge_patch(source_obj, &patch)
            .await
            .map(|_| ())
            .map_err(api("keep the field owners in the target"))
    }

    /// Deletes what is left in the source, unpauses the target and closes the journal.
    async fn finish(
        &self,
        journal: Option<Journal>,
        report: &mut MoveReport,
    ) -> Result<(), MoveError> {
        let pending = |step| Journal::pending(journal, step);
        if pending(Step::Delete) {
            if let Some(discovered) = discover(self.source, self.cluster)
                .await
                .map_err(api("discover what is left in the source"))?
            {
                let groups: Vec<Vec<&Value>> = discovered.groups().collect();
                for (i, group) in groups.iter().rev().enumerate() {
                    for obj in group {
                        self.delete_from_source(obj).await?;
                        report.deleted += 1;
                    }
                    if i == 0 && pending(Step::DeleteFirstGroup) {
                        self.done(self.target, Step::DeleteFirstGroup).await?;
                    }
                }
            }
            self.done(self.target, Step::Delete).await?;
        }
        if pending(Step::Unpause) {
            self.target
                .merge_patch(
                    &cluster_ref(self.cluster),
                    &json!({"spec": {"paused": null}}),
                )
                .await
                .map_err(api("unpause the target Cluster"))?;
            self.done(self.target, Step::Unpause).await?;
        }
        self.done(self.target, Step::Finish).await
    }

    /// clusterctl's order: mark the delete as part of a move (providers then keep the real
    /// infrastructure), delete, then clear the finalizers nobody will act on.
    async fn delete_from_source(&self, obj: &Value) -> Result<(), MoveError> {
        let step = "delete from the source";
        let annotate = json!({"metadata": {"annotations": {DELETE_FOR_MOVE_ANNOTATION: ""}}});
        ignore_gone(self.source.merge_patch(obj, &annotate).await, step)?;
        self.source.delete(obj).await.map_err(api(step))?;
        let clear = json!({"metadata": {"finalizers": null}});
        ignore_gone(self.source.merge_patch(obj, &clear).await, step)?;
        tracing::debug!("deleted {} from the source", object_ref(obj));
        Ok(())
    }
}

/// Creates the namespace when it is missing, and leaves one that exists alone: applying it
/// would take over (and drop) the labels the stage that rendered it set.
/// Creates the namespace `name` when it is missing. A cluster's namespace gets the cluster's
/// label and cairn's record of creating it, as the bootstrap stage gives it: a reverse pivot
/// into a rebuilt management cluster recreates it, and deleting the cluster later may take it.
async fn ensure_namespace(
    api: &impl ClusterApi,
    name: &str,
    cluster: Option<&str>,
) -> Result<(), ApiError> {
    let mut namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    if let Some(cluster) = cluster {
        namespace["metadata"]["labels"] = json!({CLUSTER_LABEL: cluster});
        namespace["metadata"]["annotations"] = json!({CREATED_NAMESPACE_ANNOTATION: "true"});
    }
    if api.get(&namespace).await?.is_none() {
        api.create_or_replace(&namespace).await?;
    }
    Ok(())
}

/// The kept copy of a workload kubeconfig: `cairn-system/<cluster>-kubeconfig`, key `value`.
pub fn kubeconfig_copy(cluster: &str, value_base64: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": kubeconfig_secret_name(cluster), "namespace": AGENT_NAMESPACE,
                        "labels": {CLUSTER_LABEL: cluster}},
           "data": {"value": value_base64}})
}

/// A write to an object that is already gone is no failure when deleting it.
fn ignore_gone(result: Result<Value, ApiError>, step: &'static str) -> Result<(), MoveError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()).map_err(api(step)),
    }
}
