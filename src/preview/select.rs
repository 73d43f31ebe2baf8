//! Which clusters a change can touch, found without rendering: a cluster renders the same at
//! both revisions when its cluster file, the profiles it uses (their files and every file their
//! layers' globs match) and `fleet.yaml` are all the same. Only the other clusters are loaded
//! and rendered, from snapshots that leave the untouched cluster files out.
//!
//! Every shortcut falls back to rendering everything when it cannot be sure: a changed
//! `fleet.yaml`, a profile file that cannot be read, a layer glob that reaches into
//! `clusters/`, a cluster name used twice.

use std::collections::{BTreeMap, BTreeSet};

use globset::{GlobBuilder, GlobMatcher};
use rayon::prelude::*;
use serde::Deserialize;

use crate::model::load::FLEET_FILES;
use crate::model::snapshot::{FileEntry, RepoSnapshot};

/// What to render, and what is known about every cluster file.
pub(crate) struct Selection {
    /// Everything is rendered (no shortcut was safe).
    pub full: bool,
    /// The snapshots to render: the originals when `full`, otherwise without the cluster files
    /// the change cannot touch.
    pub base: RepoSnapshot,
    pub head: RepoSnapshot,
    /// Names of the clusters defined in the files that are rendered (either revision); empty
    /// when `full`.
    pub rendered: BTreeSet<String>,
    /// Names of the clusters in the cluster files left out (identical at both revisions);
    /// empty when `full`.
    pub untouched: BTreeSet<String>,
    /// Every cluster defined at base; at head, with those that may be defined in a file that
    /// cannot be read as YAML there (see [`Selection::in_head`]).
    pub base_names: BTreeSet<String>,
    pub head_names: BTreeSet<String>,
    /// How many clusters each revision defines (readable files only).
    pub base_count: usize,
    pub head_count: usize,
}

impl Selection {
    /// Whether a cluster is defined at base.
    pub fn in_base(&self, name: &str) -> bool {
        self.base_names.contains(name)
    }

    /// Whether a cluster is defined at head, or may be: in a file that cannot be read as YAML
    /// there and that defined it at base.
    pub fn in_head(&self, name: &str) -> bool {
        self.head_names.contains(name)
    }
}

/// Every cluster name of a revision's files.
fn all_names(files: &BTreeMap<String, Option<Vec<String>>>) -> BTreeSet<String> {
    files.values().flatten().flatten().cloned().collect()
}

/// The clusters of a cluster file: name and profiles.
#[derive(Clone, Debug, PartialEq)]
struct ClusterProbe {
    name: String,
    profiles: Vec<String>,
}

/// Just enough of a Cluster document; other fields are ignored.
#[derive(Deserialize)]
struct ClusterDoc {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ProbeMeta>,
    #[serde(default)]
    spec: Option<ClusterSpecProbe>,
}

#[derive(Deserialize)]
struct ProbeMeta {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ClusterSpecProbe {
    #[serde(default)]
    profiles: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ProfileDoc {
    #[serde(default)]
    metadata: Option<ProbeMeta>,
    #[serde(default)]
    spec: Option<ProfileSpecProbe>,
}

#[derive(Deserialize)]
struct ProfileSpecProbe {
    #[serde(default)]
    layers: Option<Vec<LayerProbe>>,
}

#[derive(Deserialize)]
struct LayerProbe {
    #[serde(default)]
    manifests: Option<Vec<String>>,
}

/// A profile's name and the globs of its layers.
struct ProfileProbe {
    name: String,
    globs: Vec<GlobMatcher>,
}

fn text(entry: Option<&FileEntry>) -> Option<&str> {
    match entry {
        Some(FileEntry::Text(t)) => Some(t),
        _ => None,
    }
}

/// The clusters of a file, or `None` when it is not readable YAML of the expected shape.
fn probe_clusters(entry: Option<&FileEntry>) -> Option<Vec<ClusterProbe>> {
    let text = text(entry)?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let doc = ClusterDoc::deserialize(doc).ok()?;
        if doc.kind.as_deref() != Some("Cluster") {
            return None;
        }
        let name = doc.metadata.and_then(|m| m.name)?;
        let profiles = doc.spec.and_then(|s| s.profiles).unwrap_or_default();
        out.push(ClusterProbe { name, profiles });
    }
    Some(out)
}

fn probe_profiles(entry: Option<&FileEntry>) -> Option<Vec<ProfileProbe>> {
    let text = text(entry)?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let doc = ProfileDoc::deserialize(doc).ok()?;
        let name = doc.metadata.and_then(|m| m.name)?;
        let mut globs = Vec::new();
        for layer in doc.spec.and_then(|s| s.layers).unwrap_or_default() {
            for pattern in layer.manifests.unwrap_or_default() {
                // As the render expands them (`render::addons`).
                let glob = GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                globs.push(glob.compile_matcher());
            }
        }
        out.push(ProfileProbe { name, globs });
    }
    Some(out)
}

fn is_fleet_file(path: &str) -> bool {
    FLEET_FILES.contains(&path)
}

/// The selection for `base` → `head`; `full` forces rendering everything.
pub(crate) fn select(base: &RepoSnapshot, head: &RepoSnapshot, full: bool) -> Selection {
    let base_cluster_files: BTreeSet<&str> = base.yaml_files_under("clusters").collect();
    let head_cluster_files: BTreeSet<&str> = head.yaml_files_under("clusters").collect();
    let all_cluster_files: Vec<&str> = base_cluster_files
        .union(&head_cluster_files)
        .copied()
        .collect();

    // Probe every cluster file once per distinct content (most are the same at both).
    type Probed = (
        Option<Option<Vec<ClusterProbe>>>,
        Option<Option<Vec<ClusterProbe>>>,
    );
    let probes: Vec<(&str, Probed)> = all_cluster_files
        .par_iter()
        .map(|path| {
            let b = base.get(path);
            let pb = b.map(|_| probe_clusters(b));
            let ph = if b.is_some() && base.same_entry(head, path) {
                pb.clone()
            } else {
                let h = head.get(path);
                h.map(|_| probe_clusters(h))
            };
            (*path, (pb, ph))
        })
        .collect();
    let mut base_probe: BTreeMap<String, Option<Vec<ClusterProbe>>> = BTreeMap::new();
    let mut head_probe: BTreeMap<String, Option<Vec<ClusterProbe>>> = BTreeMap::new();
    for (path, (pb, ph)) in probes {
        if let Some(p) = pb {
            base_probe.insert(path.to_string(), p);
        }
        if let Some(p) = ph {
            head_probe.insert(path.to_string(), p);
        }
    }
    let names_of = |probe: &BTreeMap<String, Option<Vec<ClusterProbe>>>| {
        probe
            .iter()
            .map(|(path, clusters)| {
                let names = clusters
                    .as_ref()
                    .map(|cs| cs.iter().map(|c| c.name.clone()).collect());
                (path.clone(), names)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let base_files = names_of(&base_probe);
    let head_files = names_of(&head_probe);
    let base_names = all_names(&base_files);
    let mut head_names = all_names(&head_files);
    let (base_count, head_count) = (base_names.len(), head_names.len());
    for (path, names) in &base_files {
        if let (Some(names), Some(None)) = (names, head_files.get(path)) {
            head_names.extend(names.iter().cloned());
        }
    }
    let mut selection = Selection {
        full: true,
        base: RepoSnapshot::default(),
        head: RepoSnapshot::default(),
        rendered: BTreeSet::new(),
        untouched: BTreeSet::new(),
        base_names,
        head_names,
        base_count,
        head_count,
    };
    let everything = |mut selection: Selection| {
        selection.base = base.clone();
        selection.head = head.clone();
        selection
    };
    if full {
        return everything(selection);
    }

    let changed: Vec<&str> = changed_paths(base, head);
    if changed.iter().any(|p| is_fleet_file(p)) {
        return everything(selection);
    }
    // A name defined twice: which definition counts depends on the files rendered.
    if has_duplicates(&base_probe) || has_duplicates(&head_probe) {
        return everything(selection);
    }

    // Profiles: which ones the change touches.
    let Some(base_profiles) = profiles_of(base) else {
        return everything(selection);
    };
    let Some(head_profiles) = profiles_of(head) else {
        return everything(selection);
    };
    let all_profiles = || base_profiles.iter().chain(head_profiles.iter());
    // A glob that matches cluster files makes them manifests: leaving any out would change
    // what the layer renders.
    let reaches_clusters = all_profiles().any(|(_, profiles)| {
        profiles.iter().any(|p| {
            p.globs
                .iter()
                .any(|g| all_cluster_files.iter().any(|path| g.is_match(path)))
        })
    });
    if reaches_clusters {
        return everything(selection);
    }
    let changed_set: BTreeSet<&str> = changed.iter().copied().collect();
    let mut dirty_profiles: BTreeSet<&str> = BTreeSet::new();
    for (file, profiles) in all_profiles() {
        let file_changed = changed_set.contains(file.as_str());
        for p in profiles {
            if file_changed
                || changed
                    .iter()
                    .any(|path| p.globs.iter().any(|g| g.is_match(path)))
            {
                dirty_profiles.insert(&p.name);
            }
        }
    }

    // Cluster files to render: changed ones, unreadable ones, and those with a cluster that
    // uses a touched profile (at either revision).
    let touches = |clusters: &Option<Vec<ClusterProbe>>| match clusters {
        None => true,
        Some(cs) => cs.iter().any(|c| {
            c.profiles
                .iter()
                .any(|p| dirty_profiles.contains(p.as_str()))
        }),
    };
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for path in &all_cluster_files {
        let b = base_probe.get(*path);
        let h = head_probe.get(*path);
        if changed_set.contains(path) || b.is_some_and(touches) || h.is_some_and(touches) {
            keep.insert(path);
        }
    }
    let mut rendered = BTreeSet::new();
    for path in &keep {
        for probe in [base_probe.get(*path), head_probe.get(*path)]
            .into_iter()
            .flatten()
            .flatten()
        {
            rendered.extend(probe.iter().map(|c| c.name.clone()));
        }
    }
    selection.full = false;
    selection.base = reduced(base, &keep);
    selection.head = reduced(head, &keep);
    selection.rendered = rendered;
    selection.untouched = all_cluster_files
        .iter()
        .filter(|path| !keep.contains(*path))
        .filter_map(|path| head_probe.get(*path))
        .flatten()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    selection
}

/// Paths whose entry differs between the revisions (added, removed or edited), sorted.
fn changed_paths<'a>(base: &'a RepoSnapshot, head: &'a RepoSnapshot) -> Vec<&'a str> {
    let paths: BTreeSet<&str> = base.paths().chain(head.paths()).collect();
    paths
        .into_iter()
        .filter(|p| !base.same_entry(head, p))
        .collect()
}

fn has_duplicates(probe: &BTreeMap<String, Option<Vec<ClusterProbe>>>) -> bool {
    let mut seen = BTreeSet::new();
    probe
        .values()
        .flatten()
        .flatten()
        .any(|c| !seen.insert(c.name.as_str()))
}

/// The profiles of every profile file, or `None` when one cannot be read (then nothing can be
/// said about which clusters a change touches).
fn profiles_of(snapshot: &RepoSnapshot) -> Option<Vec<(String, Vec<ProfileProbe>)>> {
    snapshot
        .yaml_files_under("profiles")
        .map(|path| probe_profiles(snapshot.get(path)).map(|p| (path.to_string(), p)))
        .collect()
}

/// The snapshot without the cluster files not in `keep`.
fn reduced(snapshot: &RepoSnapshot, keep: &BTreeSet<&str>) -> RepoSnapshot {
    let cluster_files: BTreeSet<&str> = snapshot.yaml_files_under("clusters").collect();
    // Shares the entries, so files not read yet are read (and charged) at most once.
    snapshot.retain(|p| !cluster_files.contains(p) || keep.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, profiles: &str) -> String {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec:\n  profiles: [{profiles}]\n"
        )
    }

    fn profile(name: &str, glob: &str) -> String {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: {name}}}\nspec:\n  layers:\n    - name: {name}\n      manifests: [\"{glob}\"]\n"
        )
    }

    fn repo(extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut files: BTreeMap<String, String> = [
            ("fleet.yaml", "kind: Fleet\n".to_string()),
            ("clusters/a.yaml", cluster("a", "p")),
            ("clusters/b.yaml", cluster("b", "q")),
            ("clusters/c.yaml", cluster("c", "p, q")),
            ("profiles/p.yaml", profile("p", "addons/p/*.yaml")),
            ("profiles/q.yaml", profile("q", "addons/q/*.yaml")),
            ("addons/p/x.yaml", "kind: ConfigMap\n".to_string()),
            ("addons/q/y.yaml", "kind: ConfigMap\n".to_string()),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_string(), t))
        .collect();
        for (p, t) in extra {
            files.insert(p.to_string(), t.clone());
        }
        files.into_iter().collect()
    }

    fn snap(files: Vec<(String, String)>) -> RepoSnapshot {
        RepoSnapshot::from_files(files)
    }

    fn kept(sel: &Selection) -> Vec<String> {
        sel.rendered.iter().cloned().collect()
    }

    #[test]
    fn only_clusters_whose_inputs_change_are_rendered() {
        let base = snap(repo(&[]));
        // A manifest of profile p changes: a and c use it.
        let head = snap(repo(&[("addons/p/x.yaml", "kind: Secret\n".into())]));
        let sel = select(&base, &head, false);
        assert!(!sel.full);
        assert_eq!(kept(&sel), ["a", "c"]);
        assert!(sel.head.get("clusters/b.yaml").is_none());
        assert_eq!(sel.untouched.iter().collect::<Vec<_>>(), ["b"]);
        assert!(sel.head.get("addons/q/y.yaml").is_some());

        // A new manifest that matches q's glob: b and c.
        let head = snap(repo(&[("addons/q/z.yaml", "kind: ConfigMap\n".into())]));
        assert_eq!(kept(&select(&base, &head, false)), ["b", "c"]);

        // One cluster file: that cluster only; a renamed cluster: both names.
        let head = snap(repo(&[("clusters/b.yaml", cluster("b2", "q"))]));
        assert_eq!(kept(&select(&base, &head, false)), ["b", "b2"]);

        // A profile file: its users, whichever revision lists them.
        let head = snap(repo(&[
            (
                "profiles/q.yaml",
                profile("q", "addons/q/*.yaml") + "# edited\n",
            ),
            ("clusters/a.yaml", cluster("a", "p, q")),
        ]));
        assert_eq!(kept(&select(&base, &head, false)), ["a", "b", "c"]);

        // Nothing at all.
        let sel = select(&base, &base, false);
        assert!(sel.rendered.is_empty() && !sel.full);
    }

    #[test]
    fn falls_back_to_everything_when_unsure() {
        let base = snap(repo(&[]));
        let head = snap(repo(&[("fleet.yaml", "kind: Fleet\n# x\n".into())]));
        assert!(select(&base, &head, false).full);
        let head = snap(repo(&[("clusters/d.yaml", cluster("a", "p"))]));
        assert!(select(&base, &head, false).full, "duplicate name");
        let head = snap(repo(&[("profiles/r.yaml", "{{{".into())]));
        assert!(select(&base, &head, false).full, "unreadable profile");
        let head = snap(repo(&[(
            "profiles/r.yaml",
            profile("r", "clusters/*.yaml"),
        )]));
        assert!(select(&base, &head, false).full, "glob into clusters/");
        assert!(select(&base, &base, true).full);
    }

    #[test]
    fn unreadable_cluster_files_are_always_rendered() {
        let base = snap(repo(&[("clusters/bad.yaml", "kind: [".into())]));
        let head = snap(repo(&[
            ("clusters/bad.yaml", "kind: [".into()),
            ("clusters/a.yaml", cluster("a", "p") + "# edited\n"),
        ]));
        let sel = select(&base, &head, false);
        assert!(sel.head.get("clusters/bad.yaml").is_some());
        assert_eq!(kept(&sel), ["a"]);
        assert!(sel.in_head("a") && sel.in_base("a") && !sel.in_head("zz"));
    }
}
