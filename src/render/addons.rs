//! The add-ons stage: each profile layer's manifests, substituted, parsed, namespaced and
//! labelled, layer by layer in dependency order.
//!
//! Many clusters share profiles and most share variable values, so a manifest is substituted
//! and parsed once per distinct set of the values it refers to (`ManifestCache`); that is what
//! keeps a 10,000-cluster render fast. Manifests that name the cluster (`${CLUSTER_NAME}`) are
//! parsed for each cluster and not cached: no other cluster could use them, and keeping them
//! took 500 MiB at 10,000 clusters (BENCHMARKS.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use globset::GlobBuilder;
use serde_json::Value;

use super::envsubst::{referenced, substitute};
use super::kinds::{ObjectKey, compare_objects, is_builtin_cluster_scoped, object_ref, str_at};
use crate::model::diag::Diagnostic;
use crate::model::load::{Located, read_text};
use crate::model::snapshot::{FileEntry, RepoSnapshot};
use crate::model::types::{ClusterProfile, Layer};
use crate::model::validate::ResolvedCluster;
use crate::model::yaml::{Pos, parse_documents};

/// A manifest document with the position it starts at.
#[derive(Clone, Debug)]
pub struct ManifestDoc {
    pub value: Value,
    pub file: String,
    pub pos: Pos,
    /// Position of the `kind` value (what a warning about the kind points at).
    pub kind_pos: Pos,
}

type Parsed = Arc<Result<Vec<ManifestDoc>, Vec<Diagnostic>>>;

/// Built-in variables whose value differs for every cluster (cluster names are unique).
const UNIQUE_PER_CLUSTER: &[&str] = &["CLUSTER_NAME", "CLUSTER_NAMESPACE"];

/// The files a layer's globs expand to.
type LayerFiles = Arc<Result<Vec<String>, Vec<Diagnostic>>>;

/// Shared across the clusters of one render.
#[derive(Default)]
pub struct ManifestCache {
    globs: OnceMap<(String, usize), LayerFiles>,
    references: OnceMap<String, Arc<Vec<String>>>,
    parsed: OnceMap<(String, Vec<String>), Parsed>,
}

/// A map whose values are computed once per key, however many threads ask at the same time:
/// the others wait for the first (two parallel parses of the same large manifest would hold it
/// twice, which the render's memory budget does not allow for).
struct OnceMap<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceLock<V>>>>,
}

impl<K, V> Default for OnceMap<K, V> {
    fn default() -> Self {
        OnceMap {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> OnceMap<K, V> {
    fn get_or_init(&self, key: K, init: impl FnOnce() -> V) -> V {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(cells.entry(key).or_default())
        };
        cell.get_or_init(init).clone()
    }
}

/// Where a manifest's text comes from: a file, or a layer's `inline` in a profile.
struct TextSource<'a> {
    /// Cache identity: the file path, or `profile-file#layer` for inline text.
    key: String,
    file: &'a str,
    text: &'a str,
    /// How positions in `text` map to positions in `file`.
    origin: Origin,
}

/// How a position inside a manifest text maps to its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The text is the whole file.
    File,
    /// A literal block scalar (`inline: |`): line 1 of the text is file line `line`, and every
    /// line is indented by `indent` columns in the file.
    Block { line: u32, indent: u32 },
    /// Any other scalar: positions inside it cannot be mapped, so everything points at it.
    At(Pos),
}

impl ManifestCache {
    fn layer_files(
        &self,
        snapshot: &RepoSnapshot,
        profile: &Located<ClusterProfile>,
        index: usize,
    ) -> LayerFiles {
        self.globs.get_or_init((profile.file.clone(), index), || {
            Arc::new(expand_globs(snapshot, profile, index))
        })
    }

    fn references(&self, source: &TextSource) -> Arc<Vec<String>> {
        self.references
            .get_or_init(source.key.clone(), || Arc::new(referenced(source.text)))
    }

    fn parse(&self, source: &TextSource, vars: &BTreeMap<String, String>) -> Parsed {
        let names = self.references(source);
        if names
            .iter()
            .any(|n| UNIQUE_PER_CLUSTER.contains(&n.as_str()))
        {
            // No other cluster can use this parse; caching it would only keep every cluster's
            // copy in memory until the render ends (about 50 KB a cluster at 10,000 clusters).
            return Arc::new(substitute_and_parse(source, vars));
        }
        let values: Vec<String> = names
            .iter()
            .map(|n| vars.get(n).cloned().unwrap_or_else(|| "\u{0}unset".into()))
            .collect();
        self.parsed.get_or_init((source.key.clone(), values), || {
            Arc::new(substitute_and_parse(source, vars))
        })
    }
}

fn expand_globs(
    snapshot: &RepoSnapshot,
    profile: &Located<ClusterProfile>,
    index: usize,
) -> Result<Vec<String>, Vec<Diagnostic>> {
    let layer = &profile.doc.spec.layers[index];
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut diags = Vec::new();
    for (j, pattern) in layer.manifests.iter().enumerate() {
        let at = format!("/spec/layers/{index}/manifests/{j}");
        if crate::model::validate::check_repo_glob(pattern).is_err() {
            // Already reported once for the profile (absolute, `..` or malformed); saying that it
            // also matches nothing would only add noise.
            continue;
        }
        let matcher = match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(g) => g.compile_matcher(),
            Err(e) => {
                diags.push(profile.error(
                    &at,
                    format!("manifest path `{pattern}` is not a valid glob: {e}"),
                ));
                continue;
            }
        };
        let matched: Vec<&str> = snapshot.paths().filter(|p| matcher.is_match(p)).collect();
        if matched.is_empty() {
            let diag = match linked_outside(snapshot, pattern) {
                Some((link, target)) => profile
                    .error(
                        &at,
                        format!(
                            "`{pattern}` reaches into `{link}`, a symbolic link that points outside \
                             the repository (to {target})"
                        ),
                    )
                    .help("copy the files into the repository instead of linking to them"),
                None => profile
                    .error(
                        &at,
                        format!("`{pattern}` matches no file in the repository"),
                    )
                    .help("globs are relative to the repository root, e.g. addons/cni/*.yaml"),
            };
            diags.push(diag);
        }
        for path in matched {
            if seen.insert(path) {
                files.push(path.to_string());
            }
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(diags)
    }
}

/// A directory on the literal prefix of `pattern` that is a symbolic link out of the repository,
/// with its target.
fn linked_outside<'a>(snapshot: &'a RepoSnapshot, pattern: &str) -> Option<(String, &'a str)> {
    let mut dir = String::new();
    for part in pattern.split('/') {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        if let Some(FileEntry::LinkOutside(target)) = snapshot.get(&dir) {
            return Some((dir, target));
        }
    }
    None
}

/// The objects of one document with their JSON pointers: the items of a `v1` `List` (or
/// `ConfigMapList`, ...) as kubectl unpacks them, so a Secret inside one is warned about and
/// redacted like any other; else the document itself (pointer `""`).
fn list_items(value: Value) -> Vec<(String, Value)> {
    let is_list = value.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        return vec![(String::new(), value)];
    }
    let Value::Object(mut list) = value else {
        return Vec::new();
    };
    let Some(Value::Array(items)) = list.remove("items") else {
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| (format!("/items/{i}"), item))
        .collect()
}

fn substitute_and_parse(
    source: &TextSource,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<ManifestDoc>, Vec<Diagnostic>> {
    let at = |offset: usize| offset_pos(source.text, offset, source.origin);
    let text = substitute(source.text, vars).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| {
                let mut d = Diagnostic::error(source.file, at(e.offset), e.message);
                d.help = e.help;
                d
            })
            .collect::<Vec<_>>()
    })?;
    let docs = parse_documents(&text).map_err(|e| {
        vec![Diagnostic::error(
            source.file,
            shift(e.pos, source.origin),
            e.message,
        )]
    })?;
    let mut out = Vec::with_capacity(docs.len());
    let mut diags = Vec::new();
    for doc in docs {
        // A file of a million broken documents is reported in part (budget MAX_DIAGNOSTICS).
        if diags.len() >= crate::model::budget::MAX_DIAGNOSTICS {
            break;
        }
        for (at, value) in list_items(doc.value) {
            let start = match at.is_empty() {
                true => doc.start,
                false => doc.spans.value(&at),
            };
            let pos = shift(start, source.origin);
            match check_manifest(&value) {
                Ok(()) => out.push(ManifestDoc {
                    kind_pos: shift(doc.spans.value(&format!("{at}/kind")), source.origin),
                    value,
                    file: source.file.to_string(),
                    pos,
                }),
                Err(msg) => diags.push(Diagnostic::error(source.file, pos, msg).help(
                    "every manifest document must be a Kubernetes object with apiVersion, kind and \
                     metadata.name; remove empty or partial documents",
                )),
            }
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// A manifest must be a Kubernetes object: apiVersion, kind and metadata.name.
fn check_manifest(value: &Value) -> Result<(), String> {
    if !value.is_object() {
        return Err(format!(
            "a manifest document must be a mapping, found {}",
            crate::model::schema::describe(value)
        ));
    }
    let missing: Vec<&str> = [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ]
    .into_iter()
    .filter(|(_, p)| {
        value
            .pointer(p)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    })
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "manifest document has no {}",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Position of a byte offset of `text`, mapped to its file.
fn offset_pos(text: &str, offset: usize, origin: Origin) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1) as u32
        + 1;
    shift(
        Pos {
            line: line + 1,
            col,
        },
        origin,
    )
}

/// Maps a position inside embedded text to the file that embeds it.
fn shift(pos: Pos, origin: Origin) -> Pos {
    match origin {
        Origin::File => pos,
        Origin::Block { line, indent } => Pos {
            line: line + pos.line.max(1) - 1,
            col: pos.col + indent,
        },
        Origin::At(at) => at,
    }
}

/// Where the text of a layer's `inline` starts in its profile file. `key` is the position of
/// the `inline` key.
fn inline_origin(file_text: &str, key: Pos, value: Pos) -> Origin {
    let mut lines = file_text.lines().skip(key.line.saturating_sub(1) as usize);
    let Some(key_line) = lines.next() else {
        return Origin::At(value);
    };
    let after_key = key_line
        .get(key.col.saturating_sub(1) as usize..)
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or_default();
    if !after_key.starts_with('|') {
        return Origin::At(value);
    }
    // Leading blank lines belong to the text, so text line 1 is always the next file line;
    // the indentation is that of the first line with content.
    let indent = lines
        .find(|l| !l.trim().is_empty())
        .map_or(0, |l| l.len() - l.trim_start_matches(' ').len()) as u32;
    Origin::Block {
        line: key.line + 1,
        indent,
    }
}

/// One layer's objects, ready for the bundle.
pub struct LayerObjects<'a> {
    pub layer: &'a Layer,
    pub objects: Vec<Value>,
}

/// Renders the add-on layers of a cluster, in dependency order.
pub fn render_layers<'a>(
    snapshot: &RepoSnapshot,
    cache: &ManifestCache,
    rc: &'a ResolvedCluster,
    diags: &mut Vec<Diagnostic>,
) -> Vec<LayerObjects<'a>> {
    let mut docs_per_layer = Vec::new();
    for r in &rc.layers {
        let profile = rc.profiles[r.profile];
        let layer = &profile.doc.spec.layers[r.layer];
        let mut docs = Vec::new();
        for source in layer_sources(snapshot, cache, profile, r.layer, diags) {
            match &*cache.parse(&source, &rc.variables) {
                Ok(parsed) => docs.extend(parsed.iter().cloned()),
                Err(errors) => diags.extend(errors.iter().cloned()),
            }
        }
        docs_per_layer.push((layer, docs));
    }
    let cluster_scoped_crds = cluster_scoped_custom_kinds(&docs_per_layer);
    // Where each object was first defined: file, position and layer.
    let mut defined: HashMap<ObjectKey, (String, Pos, &str)> = HashMap::new();
    docs_per_layer
        .into_iter()
        .map(|(layer, docs)| {
            let mut objects: Vec<Value> = Vec::with_capacity(docs.len());
            for doc in docs {
                if doc.value.get("kind").and_then(Value::as_str) == Some("Secret") {
                    diags.push(
                        Diagnostic::warning(&doc.file, doc.kind_pos, "plaintext `kind: Secret` in the repository")
                            .help("keep secrets out of git: use a SealedSecret, SOPS or an external secret store"),
                    );
                }
                let obj = place_in_namespace(doc.value, layer, &cluster_scoped_crds);
                let key = ObjectKey::of(&obj);
                if let Some((file, pos, first_layer)) = defined.get(&key) {
                    diags.push(
                        Diagnostic::error(
                            &doc.file,
                            doc.pos,
                            format!(
                                "{} is defined twice: here, by layer `{}`, and at {file}:{}, by layer `{first_layer}`",
                                object_ref(&obj),
                                layer.name,
                                pos.line
                            ),
                        )
                        .help("each object may come from one layer only; remove one of the two"),
                    );
                    continue;
                }
                defined.insert(key, (doc.file.clone(), doc.pos, layer.name.as_str()));
                objects.push(obj);
            }
            objects.sort_by(compare_objects);
            LayerObjects { layer, objects }
        })
        .collect()
}

fn layer_sources<'a>(
    snapshot: &'a RepoSnapshot,
    cache: &ManifestCache,
    profile: &'a Located<ClusterProfile>,
    index: usize,
    diags: &mut Vec<Diagnostic>,
) -> Vec<TextSource<'a>> {
    let layer = &profile.doc.spec.layers[index];
    let mut sources = Vec::new();
    if !layer.manifests.is_empty() {
        match &*cache.layer_files(snapshot, profile, index) {
            Ok(files) => {
                for file in files {
                    let Some((path, _)) = snapshot.get_key_value(file) else {
                        continue;
                    };
                    match read_text(snapshot, path) {
                        Ok(text) => sources.push(TextSource {
                            key: path.to_string(),
                            file: path,
                            text,
                            origin: Origin::File,
                        }),
                        Err(d) => diags.push(d),
                    }
                }
            }
            Err(errors) => diags.extend(errors.iter().cloned()),
        }
    }
    if let Some(inline) = &layer.inline {
        let pointer = format!("/spec/layers/{index}/inline");
        let origin = match read_text(snapshot, &profile.file) {
            Ok(file_text) => {
                inline_origin(file_text, profile.key_pos(&pointer), profile.pos(&pointer))
            }
            Err(_) => Origin::At(profile.pos(&pointer)),
        };
        sources.push(TextSource {
            key: format!("{}#{index}", profile.file),
            file: &profile.file,
            text: inline,
            origin,
        });
    }
    sources
}

/// Kinds defined by CRDs in the add-ons whose scope is `Cluster`.
fn cluster_scoped_custom_kinds(layers: &[(&Layer, Vec<ManifestDoc>)]) -> HashSet<String> {
    layers
        .iter()
        .flat_map(|(_, docs)| docs)
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .filter(|d| str_at(&d.value, "/spec/scope") == Some("Cluster"))
        .filter_map(|d| str_at(&d.value, "/spec/names/kind"))
        .map(str::to_string)
        .collect()
}

/// Gives a namespaced object with no namespace the layer's default (or `default`), and strips
/// any namespace from cluster-scoped objects.
fn place_in_namespace(
    mut obj: Value,
    layer: &Layer,
    cluster_scoped_crds: &HashSet<String>,
) -> Value {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let cluster_scoped = is_builtin_cluster_scoped(kind) || cluster_scoped_crds.contains(kind);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if cluster_scoped {
            meta.remove("namespace");
        } else if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let ns = layer.namespace.as_deref().unwrap_or("default");
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_asking_for_one_key_at_once_compute_it_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let map: OnceMap<&str, usize> = OnceMap::default();
        let computed = AtomicUsize::new(0);
        let values: Vec<usize> = std::thread::scope(|s| {
            let askers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        map.get_or_init("manifest", || {
                            // Long enough that the other threads ask while this one computes.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            computed.fetch_add(1, Ordering::SeqCst) + 42
                        })
                    })
                })
                .collect();
            askers.into_iter().map(|a| a.join().unwrap()).collect()
        });
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert!(values.iter().all(|v| *v == 42), "{values:?}");
        assert_eq!(map.get_or_init("other", || 7), 7);
    }

    #[test]
    fn inline_text_maps_to_its_place_in_the_profile() {
        let profile = "layers:\n  - name: a\n    inline: |-\n\n      kind: X\n  - name: b\n    inline: >\n      kind: Y\n";
        let key = Pos { line: 3, col: 5 };
        let origin = inline_origin(profile, key, Pos { line: 4, col: 1 });
        assert_eq!(origin, Origin::Block { line: 4, indent: 6 });
        // Text line 2 (`kind: X`, after the kept blank line), column 7.
        assert_eq!(
            shift(Pos { line: 2, col: 7 }, origin),
            Pos { line: 5, col: 13 }
        );
        let folded_value = Pos { line: 8, col: 7 };
        let origin = inline_origin(profile, Pos { line: 7, col: 5 }, folded_value);
        assert_eq!(origin, Origin::At(folded_value));
        assert_eq!(shift(Pos { line: 3, col: 2 }, origin), folded_value);
    }
}
