//! PURE rendering: a validated repository snapshot in, one bundle of four stages per cluster
//! out (DESIGN.md §2). No I/O here except through the snapshot.

pub mod addons;
pub mod capi;
pub mod envsubst;
pub mod finalize;
pub mod kinds;
pub mod output;
pub mod pivot;
pub mod yaml;

use rayon::prelude::*;
use serde_json::Value;

use crate::model::budget::MAX_DIAGNOSTICS;
use crate::model::diag::{Diagnostic, cap, consolidate, truncate};
use crate::model::load::LoadedRepo;
use crate::model::snapshot::RepoSnapshot;
use crate::model::types::{Fleet, StageName};
use crate::model::validate::{ResolvedCluster, resolve};
use addons::{ManifestCache, render_layers};
use finalize::{
    BOOTSTRAP_LAYER_ANNOTATION, LAYER_LABEL, NO_WAIT_ANNOTATION, SERVICE_ACCOUNT_ANNOTATION,
    apply_patches, hash_templates, label_stage, set_annotation, set_label,
};
use kinds::compare_objects;

/// One stage of a cluster's bundle, objects in apply order.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    pub name: StageName,
    pub objects: Vec<Value>,
}

/// Everything cairn applies for one cluster.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    pub cluster: String,
    pub pivot: bool,
    /// Present stages in order; the pivot stage is absent when the cluster does not pivot.
    pub stages: Vec<Stage>,
}

impl Bundle {
    pub fn stage(&self, name: StageName) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Renders one cluster. Problems go to `diags`; `None` when any of them is an error.
pub fn render_cluster(
    snapshot: &RepoSnapshot,
    fleet: Option<&Fleet>,
    cache: &ManifestCache,
    rc: &ResolvedCluster,
    diags: &mut Vec<Diagnostic>,
) -> Option<Bundle> {
    let before = diags.len();
    let layers = render_layers(snapshot, cache, rc, diags);
    let mut addons = Vec::new();
    for layer in layers {
        for mut obj in layer.objects {
            set_label(&mut obj, LAYER_LABEL, &layer.layer.name);
            if !layer.layer.wait {
                set_annotation(&mut obj, NO_WAIT_ANNOTATION, "false");
            }
            if layer.layer.bootstrap {
                set_annotation(&mut obj, BOOTSTRAP_LAYER_ANNOTATION, "true");
            }
            if let (Some(account), Some(namespace)) =
                (&layer.layer.service_account_name, &layer.layer.namespace)
            {
                let value = format!("{namespace}/{account}");
                set_annotation(&mut obj, SERVICE_ACCOUNT_ANNOTATION, &value);
            }
            addons.push(obj);
        }
    }
    let mut stages = vec![(StageName::Bootstrap, capi::bootstrap_objects(rc))];
    if rc.pivot {
        let default_fleet = Fleet {
            api_version: String::new(),
            kind: String::new(),
            metadata: Default::default(),
            spec: Default::default(),
        };
        let fleet = fleet.unwrap_or(&default_fleet);
        stages.push((StageName::Pivot, pivot::pivot_objects(rc, fleet, &addons)));
    }
    stages.push((StageName::Workload, capi::workload_objects(rc)));
    stages.push((StageName::Addons, addons));
    for (name, objects) in stages.iter_mut() {
        label_stage(objects, rc.name, *name);
    }
    apply_patches(rc, &mut stages, diags);
    let stages = stages
        .into_iter()
        .map(|(name, mut objects)| {
            // Patches may have removed the labels; they are how cairn finds its objects.
            label_stage(&mut objects, rc.name, name);
            hash_templates(&mut objects);
            // Add-ons keep their layer order (already sorted within each layer).
            if name != StageName::Addons {
                objects.sort_by(compare_objects);
            }
            Stage { name, objects }
        })
        .collect();
    let failed = diags[before..].iter().any(Diagnostic::is_error);
    for d in &mut diags[before..] {
        if d.clusters.is_empty() {
            d.clusters.push(rc.name.to_string());
        }
    }
    (!failed).then(|| Bundle {
        cluster: rc.name.to_string(),
        pivot: rc.pivot,
        stages,
    })
}

/// The outcome of checking and rendering a whole repository.
pub struct RepoRender {
    pub bundles: Vec<Bundle>,
    /// Errors and warnings, sorted and merged across clusters.
    pub diagnostics: Vec<Diagnostic>,
}

impl RepoRender {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads, validates and renders the clusters of `snapshot` (all of them when `only` is empty),
/// handing each bundle to `sink` as soon as it is ready, so memory does not grow with the fleet.
pub fn render_repo_with<F>(snapshot: &RepoSnapshot, only: &[String], sink: F) -> Vec<Diagnostic>
where
    F: Fn(Bundle) -> Result<(), Diagnostic> + Sync,
{
    let (repo, mut diags) = crate::model::load(snapshot);
    diags.extend(crate::model::load::not_a_fleet(snapshot));
    if diags.len() >= MAX_DIAGNOSTICS {
        // Loading stopped at the diagnostics budget, so the model is partial: resolving and
        // rendering it would only add errors about what was not loaded.
        return cap(consolidate(diags), 0);
    }
    let (resolved, more) = resolve(&repo);
    diags.extend(more);
    diags.extend(unknown_selected(&repo, only));
    let selected: Vec<&ResolvedCluster> = resolved
        .iter()
        .filter(|rc| only.is_empty() || only.iter().any(|n| n == rc.name))
        .collect();
    let fleet = repo.fleet.as_ref().map(|f| &f.doc);
    let cache = ManifestCache::default();
    let rendered: Vec<(Vec<Diagnostic>, usize)> = selected
        .par_iter()
        .map(|rc| {
            let mut local = Vec::new();
            if let Some(bundle) = render_cluster(snapshot, fleet, &cache, rc, &mut local) {
                if let Err(d) = sink(bundle) {
                    local.push(d);
                }
            }
            // Each cluster keeps at most MAX_DIAGNOSTICS until they are merged and capped.
            let dropped = truncate(&mut local);
            (local, dropped)
        })
        .collect();
    let mut dropped = 0;
    for (local, left_out) in rendered {
        diags.extend(local);
        dropped += left_out;
    }
    cap(consolidate(diags), dropped)
}

/// Renders and collects every bundle in memory (tests, previews, small fleets).
pub fn render_repo(snapshot: &RepoSnapshot, only: &[String]) -> RepoRender {
    let bundles = std::sync::Mutex::new(Vec::new());
    let diagnostics = render_repo_with(snapshot, only, |b| {
        bundles.lock().unwrap_or_else(|e| e.into_inner()).push(b);
        Ok(())
    });
    let mut bundles = bundles.into_inner().unwrap_or_else(|e| e.into_inner());
    bundles.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    RepoRender {
        bundles,
        diagnostics,
    }
}

fn unknown_selected(repo: &LoadedRepo, only: &[String]) -> Vec<Diagnostic> {
    only.iter()
        .filter(|n| !repo.clusters.iter().any(|c| &c.doc.metadata.name == *n))
        .map(|n| {
            let names = repo.clusters.iter().map(|c| c.doc.metadata.name.as_str());
            let mut d = Diagnostic::error(
                "",
                Default::default(),
                format!("no cluster named `{n}` in the repository"),
            );
            if let Some(s) = crate::model::diag::did_you_mean(n, names) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            d
        })
        .collect()
}
