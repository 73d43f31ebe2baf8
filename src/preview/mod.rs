//! Pull-request previews (DESIGN.md §5): what a change between two revisions of the config
//! repository does to the fleet, per cluster, stage and object, and what it means for machines.
//!
//! PURE except [`from_git`] and [`read_revisions`], which read the two revisions' trees straight
//! from the git object database (no checkout; the working tree is never touched). Everything
//! else takes snapshots and returns data:
//!
//! - [`prepare`] renders both revisions with the render core (`render_cluster`, per cluster,
//!   after loading and validating each revision) and compares them per cluster, stage and
//!   object. Only the clusters whose inputs differ between the revisions are loaded and rendered
//!   (`select`: same cluster document, profiles, matched manifests and `fleet.yaml` means the
//!   same render), which is what keeps a preview of a 10,000-cluster fleet within seconds;
//!   anything the shortcut cannot be sure of falls back to rendering everything.
//! - [`Prepared::live_requests`] and [`Prepared::finish`] take the live objects of each cluster
//!   as plain data (`--live`) and keep apart what the change does (base → head) from drift that
//!   is already there (live ≠ base); see [`live`].
//! - [`markdown`] prints a report that fits one GitHub comment; [`json`] the stable, versioned
//!   JSON form (`"version": 1`).
//!
//! Secret values never reach a preview: every diff goes through [`crate::diff::redact_pair`].

mod compare;
pub mod live;
mod markdown;
mod report;
mod select;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::model::diag::{Diagnostic, consolidate};
use crate::model::load::LoadedRepo;
use crate::model::snapshot::RepoSnapshot;
use crate::model::types::StageName;
use crate::model::validate::{ResolvedCluster, resolve};
use crate::render::addons::ManifestCache;
use crate::render::kinds::ObjectKey;
use crate::render::{Bundle, render_cluster};
use crate::source::{SourceError, snapshot_at};

pub use live::{LiveClass, LiveClusterReport, LiveObject, LiveReport, LiveRequest, LiveState};
pub use markdown::{DEFAULT_FOLD_LINES, GITHUB_COMMENT_LIMIT, markdown, markdown_with};
pub use report::json;

/// Version of the JSON format ([`json`]); raised on any incompatible change.
pub const JSON_VERSION: u32 = 1;

#[derive(Clone, Debug)]
pub struct PreviewOptions {
    /// Warn when the change touches more than this percentage of the fleet's clusters at once
    /// (changed or removed clusters, of those at the base revision; only when more than one).
    pub max_share_percent: f64,
    /// Render every cluster of both revisions, not only those whose inputs differ. Slower; the
    /// result is the same, except that errors the base already had in clusters the change does
    /// not touch are reported too (in `head_diagnostics`).
    pub full: bool,
    /// Also render the clusters the change does not touch (once, at head), so that
    /// [`Prepared::finish`] can compare every cluster with its live state (`--live`).
    pub live: bool,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            max_share_percent: 10.0,
            full: false,
            live: false,
        }
    }
}

/// A revision as the user named it and the commit it resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// As given (`main`, `HEAD~1`, a commit id).
    pub rev: String,
    /// Full commit id, when read from git.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// What a change does to the fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preview {
    pub base: Revision,
    pub head: Revision,
    /// Errors found at the base revision (in the clusters the preview rendered).
    pub base_errors: Vec<Diagnostic>,
    /// Errors and warnings at the head revision. Any error: the change does not validate.
    pub head_diagnostics: Vec<Diagnostic>,
    pub summary: Summary,
    /// Things a reviewer must not miss, grouped: one entry per kind and message, with the
    /// clusters it concerns.
    pub warnings: Vec<Warning>,
    /// Every cluster that is not unchanged, by name.
    pub clusters: Vec<ClusterPreview>,
    /// `--live`: the head render against the live clusters.
    pub live: Option<LiveReport>,
}

impl Preview {
    /// Whether the head revision renders without errors.
    pub fn head_valid(&self) -> bool {
        !self.head_diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Whether the change does anything to any cluster.
    pub fn has_changes(&self) -> bool {
        !self.clusters.is_empty()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Clusters at each revision (every cluster document, rendered or not).
    pub clusters_base: usize,
    pub clusters_head: usize,
    pub clusters_added: usize,
    pub clusters_removed: usize,
    pub clusters_changed: usize,
    pub clusters_unchanged: usize,
    /// Clusters in the head revision that do not render (see `head_diagnostics`).
    pub clusters_invalid: usize,
    pub objects_created: usize,
    pub objects_changed: usize,
    pub objects_deleted: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterChange {
    /// New in head.
    Added,
    /// Gone from head.
    Removed,
    /// In both, rendered differently.
    Changed,
    /// In head, but it does not render there (errors in `head_diagnostics`).
    Invalid,
}

impl ClusterChange {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterChange::Added => "added",
            ClusterChange::Removed => "removed",
            ClusterChange::Changed => "changed",
            ClusterChange::Invalid => "invalid",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterPreview {
    pub name: String,
    pub change: ClusterChange,
    /// Whether the cluster pivots, at base and at head (absent where it does not render).
    pub pivot_base: Option<bool>,
    pub pivot_head: Option<bool>,
    /// The base render's Cluster carries `cairn.dev/protect: "true"`.
    pub protected: bool,
    /// The cluster exists at base but did not render there, so everything shows as created.
    pub base_invalid: bool,
    /// What the change means for machines, in order: cluster, control plane, pools.
    pub machines: Vec<MachineImpact>,
    /// Add-on changes by layer, in layer order of the head render (removed layers last).
    pub addons: Vec<LayerChange>,
    pub objects: Vec<ObjectDiff>,
}

/// One field that differs, for plain-words explanations (`memoryMiB 8192 → 16384`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Dotted path inside the object's part being compared.
    pub field: String,
    /// JSON text of the old and new value; absent where the field is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Why machines are replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// `spec.version` of the KubeadmControlPlane or the MachineDeployment.
    KubernetesVersion { from: String, to: String },
    /// The machine template reference moved (its spec changed, so its hash name changed).
    MachineTemplate {
        from: String,
        to: String,
        changes: Vec<FieldChange>,
    },
    /// The bootstrap (KubeadmConfigTemplate) reference moved.
    BootstrapTemplate {
        from: String,
        to: String,
        changes: Vec<FieldChange>,
    },
    /// The KubeadmControlPlane's `kubeadmConfigSpec` changed.
    KubeadmConfig { changes: Vec<FieldChange> },
    /// Other fields of the machine template of a pool (`spec.template.spec`).
    MachineSpec { changes: Vec<FieldChange> },
}

/// What a change means for a cluster's machines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MachineImpact {
    /// A new cluster: created (one control-plane machine first), then pivoted when `pivot`.
    ClusterCreated {
        pivot: bool,
        control_plane: u64,
        workers: u64,
        pools: usize,
    },
    /// A removed cluster: deleted with all its machines, only with `--prune`; a pivoted one
    /// is moved back to the management cluster first. `protected` ones are never deleted.
    ClusterDeleted {
        pivot: bool,
        protected: bool,
        control_plane: u64,
        workers: u64,
    },
    /// `pivot` changed.
    PivotChanged {
        from: bool,
        to: bool,
    },
    /// Every control-plane machine is replaced, one at a time.
    ControlPlaneReplaced {
        machines: u64,
        reasons: Vec<Reason>,
    },
    ControlPlaneScaled {
        from: u64,
        to: u64,
    },
    /// Every machine of a worker pool is replaced (rolling).
    PoolReplaced {
        pool: String,
        machines: u64,
        reasons: Vec<Reason>,
    },
    PoolScaled {
        pool: String,
        from: u64,
        to: u64,
    },
    PoolAdded {
        pool: String,
        replicas: u64,
    },
    PoolRemoved {
        pool: String,
        replicas: u64,
    },
}

/// Add-on objects of one layer that change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerChange {
    pub layer: String,
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub deleted: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectAction {
    Create,
    Update,
    Delete,
    /// A hash-named template whose spec changed: a new template replaces the old one (the old
    /// one is pruned after the rollout). `from` names the old one.
    Replace,
}

impl ObjectAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectAction::Create => "create",
            ObjectAction::Update => "update",
            ObjectAction::Delete => "delete",
            ObjectAction::Replace => "replace",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectDiff {
    pub stage: StageName,
    #[serde(flatten)]
    pub key: ObjectKey,
    pub action: ObjectAction,
    /// For `replace`: the name of the template it replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `cairn.dev/layer` of add-on objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Unified YAML diff, base → head, Secret values redacted.
    pub diff: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The head revision does not render.
    Invalid,
    /// A Kubernetes minor version is skipped; kubeadm upgrades one minor at a time.
    SkippedMinor,
    /// A Kubernetes version goes down; kubeadm does not downgrade.
    Downgrade,
    /// An even number of control-plane machines (etcd quorum).
    EvenControlPlane,
    /// A removed cluster is protected (`cairn.dev/protect: "true"`).
    ProtectedRemoval,
    /// The change touches more than `max_share_percent` of the fleet.
    FleetShare,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
    /// The clusters it concerns, sorted (empty for fleet-wide warnings).
    pub clusters: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot read the base revision {rev:?}")]
    Base {
        rev: String,
        #[source]
        source: SourceError,
    },
    #[error("cannot read the head revision {rev:?}")]
    Head {
        rev: String,
        #[source]
        source: SourceError,
    },
}

/// The two revisions of a repository, read from git.
pub struct Revisions {
    pub base: Revision,
    pub head: Revision,
    pub base_snapshot: RepoSnapshot,
    pub head_snapshot: RepoSnapshot,
}

/// Reads `base` and `head` (any revspec: branch, tag, commit, `HEAD~1`) of the repository at
/// `repo` from its object database, both at once. No checkout: the working tree is untouched.
pub fn read_revisions(repo: &Path, base: &str, head: &str) -> Result<Revisions, PreviewError> {
    let (b, h) = rayon::join(|| snapshot_at(repo, base), || snapshot_at(repo, head));
    let (base_commit, base_snapshot) = b.map_err(|source| PreviewError::Base {
        rev: base.to_string(),
        source,
    })?;
    let (head_commit, head_snapshot) = h.map_err(|source| PreviewError::Head {
        rev: head.to_string(),
        source,
    })?;
    Ok(Revisions {
        base: Revision {
            rev: base.to_string(),
            commit: Some(base_commit),
        },
        head: Revision {
            rev: head.to_string(),
            commit: Some(head_commit),
        },
        base_snapshot,
        head_snapshot,
    })
}

/// The preview of `base` → `head` in the git repository at `repo` (without `--live`).
pub fn from_git(
    repo: &Path,
    base: &str,
    head: &str,
    opts: &PreviewOptions,
) -> Result<Preview, PreviewError> {
    let revisions = read_revisions(repo, base, head)?;
    Ok(prepare_revisions(&revisions, opts).finish(None))
}

/// [`prepare`] with the revision names and commits filled in.
pub fn prepare_revisions(revisions: &Revisions, opts: &PreviewOptions) -> Prepared {
    let mut prepared = prepare(&revisions.base_snapshot, &revisions.head_snapshot, opts);
    prepared.preview.base = revisions.base.clone();
    prepared.preview.head = revisions.head.clone();
    prepared
}

/// The preview of two snapshots, without `--live`. Revision names default to `base` and
/// `head`; set `Preview::base`/`head` to name them.
pub fn preview(base: &RepoSnapshot, head: &RepoSnapshot, opts: &PreviewOptions) -> Preview {
    prepare(base, head, opts).finish(None)
}

/// Both revisions rendered and compared, waiting for the live state (or none) to finish.
pub struct Prepared {
    preview: Preview,
    /// With `live` only: base bundles of the clusters the change touches (all with `full`).
    base: BTreeMap<String, Bundle>,
    /// With `live` only: head bundles of every cluster.
    head: BTreeMap<String, Bundle>,
    /// Clusters whose inputs are identical in both revisions (rendered at head only, with
    /// `live`); their base render is their head render.
    untouched: BTreeSet<String>,
}

/// One revision, loaded and resolved.
struct Loaded<'s> {
    snapshot: &'s RepoSnapshot,
    repo: LoadedRepo,
    diagnostics: Vec<Diagnostic>,
}

impl<'s> Loaded<'s> {
    fn new(snapshot: &'s RepoSnapshot) -> Self {
        let (repo, diagnostics) = crate::model::load(snapshot);
        Loaded {
            snapshot,
            repo,
            diagnostics,
        }
    }
}

/// One revision's clusters, ready to render one by one.
struct Resolved<'l, 's> {
    loaded: &'l Loaded<'s>,
    by_name: HashMap<&'l str, ResolvedCluster<'l>>,
    cache: ManifestCache,
}

impl<'l, 's> Resolved<'l, 's> {
    fn new(loaded: &'l Loaded<'s>) -> (Self, Vec<Diagnostic>) {
        let (resolved, diagnostics) = resolve(&loaded.repo);
        let by_name = resolved.into_iter().map(|rc| (rc.name, rc)).collect();
        let resolved = Resolved {
            loaded,
            by_name,
            cache: ManifestCache::default(),
        };
        (resolved, diagnostics)
    }

    /// The cluster's bundle, with the diagnostics of rendering it; as `render_repo` does.
    fn render(&self, name: &str, diags: &mut Vec<Diagnostic>) -> Option<Bundle> {
        let rc = self.by_name.get(name)?;
        let fleet = self.loaded.repo.fleet.as_ref().map(|f| &f.doc);
        render_cluster(self.loaded.snapshot, fleet, &self.cache, rc, diags)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().copied()
    }
}

/// What rendering and comparing one cluster gave.
struct Outcome {
    compared: Option<compare::Compared>,
    base_diags: Vec<Diagnostic>,
    head_diags: Vec<Diagnostic>,
    /// With `live`: the bundles, kept for [`Prepared::finish`].
    base: Option<Bundle>,
    head: Option<Bundle>,
}

/// Renders both revisions and compares them (see the module documentation).
///
/// Both revisions are loaded and resolved at once; then each cluster is rendered at both
/// revisions and compared in one task, in parallel across clusters, with the render core's
/// `render_cluster` (the function `render_repo` runs per cluster). Without `live` the bundles
/// are dropped as soon as they are compared, so memory does not grow with the fleet.
pub fn prepare(base: &RepoSnapshot, head: &RepoSnapshot, opts: &PreviewOptions) -> Prepared {
    let selection = select::select(base, head, opts.full);
    tracing::debug!(
        full = selection.full,
        clusters = selection.rendered.len(),
        "preview: clusters to render at both revisions"
    );
    let sel = &selection;
    // With `live`, every head cluster, so that each can be compared with its live state.
    let head_snapshot = if opts.live && !sel.full {
        head
    } else {
        &sel.head
    };
    let (base_loaded, head_loaded) =
        rayon::join(|| Loaded::new(&sel.base), || Loaded::new(head_snapshot));
    let ((base_resolved, base_more), (head_resolved, head_more)) = rayon::join(
        || Resolved::new(&base_loaded),
        || Resolved::new(&head_loaded),
    );
    let names: BTreeSet<&str> = base_resolved.names().chain(head_resolved.names()).collect();
    let names: Vec<&str> = names.into_iter().collect();
    let outcomes: Vec<Outcome> = names
        .par_iter()
        .map(|name| {
            let mut outcome = Outcome {
                compared: None,
                base_diags: Vec::new(),
                head_diags: Vec::new(),
                base: None,
                head: None,
            };
            if opts.live && sel.untouched.contains(*name) {
                // The same at both revisions: rendered once, for the live comparison only.
                outcome.head = head_resolved.render(name, &mut outcome.head_diags);
                return outcome;
            }
            let b = base_resolved.render(name, &mut outcome.base_diags);
            let h = head_resolved.render(name, &mut outcome.head_diags);
            outcome.compared = Some(compare::compare_cluster(
                name,
                b.as_ref(),
                h.as_ref(),
                sel.in_base(name),
                sel.in_head(name),
            ));
            if opts.live {
                (outcome.base, outcome.head) = (b, h);
            }
            outcome
        })
        .collect();

    let mut base_diags = base_loaded.diagnostics.clone();
    base_diags.extend(base_more);
    let mut head_diags = head_loaded.diagnostics.clone();
    // At head only (the full snapshot, not the selection): a base without a fleet is a change
    // that creates the repository.
    head_diags.extend(crate::model::load::not_a_fleet(head));
    head_diags.extend(head_more);
    let mut compared = Vec::new();
    let mut kept_base = BTreeMap::new();
    let mut kept_head = BTreeMap::new();
    for o in outcomes {
        base_diags.extend(o.base_diags);
        head_diags.extend(o.head_diags);
        compared.extend(o.compared);
        if let Some(b) = o.base {
            kept_base.insert(b.cluster.clone(), b);
        }
        if let Some(h) = o.head {
            kept_head.insert(h.cluster.clone(), h);
        }
    }
    let seen: BTreeSet<String> = compared.iter().map(|c| c.name.clone()).collect();
    for name in compare::unrendered(sel, &seen) {
        compared.push(compare::compare_cluster(
            name,
            None,
            None,
            sel.in_base(name),
            sel.in_head(name),
        ));
    }
    let untouched: BTreeSet<String> = kept_head
        .keys()
        .filter(|n| opts.live && sel.untouched.contains(*n))
        .cloned()
        .collect();
    let preview = compare::assemble(compare::Inputs {
        selection: sel,
        compared,
        base_errors: consolidate(base_diags)
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect(),
        head_diagnostics: consolidate(head_diags),
        opts,
    });
    Prepared {
        preview,
        base: kept_base,
        head: kept_head,
        untouched,
    }
}

impl Prepared {
    /// The preview so far (no live state).
    pub fn preview(&self) -> &Preview {
        &self.preview
    }

    /// Per cluster at head (and per cluster removed by the change), the objects whose live
    /// state `--live` needs: every object of the base and head renders, each once, with the
    /// stage whose copy counts (the last stage that renders it: the workload stage's full
    /// KubeadmControlPlane over the bootstrap stage's one-node copy). Empty unless prepared
    /// with `PreviewOptions::live` (or `full`).
    pub fn live_requests(&self) -> Vec<LiveRequest> {
        let names: BTreeSet<&String> = self.base.keys().chain(self.head.keys()).collect();
        names
            .into_iter()
            .map(|name| {
                let base = self.base_bundle(name);
                let head = self.head.get(name);
                live::request(name, base, head)
            })
            .collect()
    }

    /// The preview, with the live comparison when `live` is given.
    pub fn finish(self, live: Option<&LiveState>) -> Preview {
        let report = live.map(|state| {
            let names: Vec<&String> = self
                .base
                .keys()
                .chain(self.head.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let clusters = names
                .par_iter()
                .map(|name| {
                    live::compare_cluster(
                        name,
                        self.base_bundle(name),
                        self.head.get(*name),
                        state.get(name),
                    )
                })
                .collect();
            live::report(clusters)
        });
        let mut preview = self.preview;
        preview.live = report;
        preview
    }

    fn base_bundle(&self, name: &str) -> Option<&Bundle> {
        self.base.get(name).or_else(|| self.untouched_bundle(name))
    }

    fn untouched_bundle(&self, name: &str) -> Option<&Bundle> {
        if self.untouched.contains(name) {
            self.head.get(name)
        } else {
            None
        }
    }
}

/// Objects of a bundle by stage and key, in stage order.
pub(crate) fn stage_objects(bundle: &Bundle, stage: StageName) -> Vec<(ObjectKey, &Value)> {
    bundle
        .stage(stage)
        .map(|s| s.objects.iter().map(|o| (ObjectKey::of(o), o)).collect())
        .unwrap_or_default()
}
