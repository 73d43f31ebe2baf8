//! Loading the config kinds out of a snapshot: `fleet.yaml`, `clusters/**`, `profiles/**`.
//!
//! Each document is parsed with positions, checked against its kind's schema (every finding at
//! once), and only then deserialized. Problems become diagnostics; loading never stops early.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::budget::LoadBudget;
use super::diag::Diagnostic;
use super::schema::{check, schema_for_kind};
use super::snapshot::{FileEntry, MAX_FILE_BYTES, MAX_READ_BYTES, RepoSnapshot, is_yaml};
use super::types::{API_VERSION, Cluster, ClusterProfile, Fleet};
use super::yaml::{Pos, SpanIndex, YamlDoc, parse_documents};

/// A config document with where it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub file: String,
    pub spans: SpanIndex,
    pub doc: T,
}

impl<T> Located<T> {
    /// Position of the value at `pointer` in this document.
    pub fn pos(&self, pointer: &str) -> Pos {
        self.spans.value(pointer)
    }

    pub fn key_pos(&self, pointer: &str) -> Pos {
        self.spans.key(pointer)
    }

    pub fn error(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.file, self.pos(pointer), message)
    }
}

#[derive(Clone, Debug, Default)]
pub struct LoadedRepo {
    pub fleet: Option<Located<Fleet>>,
    pub clusters: Vec<Located<Cluster>>,
    pub profiles: Vec<Located<ClusterProfile>>,
}

pub const FLEET_FILES: [&str; 2] = ["fleet.yaml", "fleet.yml"];

/// Loads every config document of the snapshot.
pub fn load(snapshot: &RepoSnapshot) -> (LoadedRepo, Vec<Diagnostic>) {
    let mut repo = LoadedRepo::default();
    let mut diags = Vec::new();
    // Aliases and diagnostics are budgeted across the files (model/budget.rs).
    let budget = &mut LoadBudget::default();
    for file in FLEET_FILES {
        if snapshot.get(file).is_some() {
            for fleet in load_kind::<Fleet>(snapshot, file, "Fleet", budget, &mut diags) {
                if repo.fleet.is_some() {
                    diags.push(
                        fleet.error("", "a second Fleet document; there must be one at most"),
                    );
                } else {
                    repo.fleet = Some(fleet);
                }
            }
        }
    }
    for file in snapshot.yaml_files_under("clusters") {
        repo.clusters.extend(load_kind::<Cluster>(
            snapshot, file, "Cluster", budget, &mut diags,
        ));
    }
    for file in snapshot.yaml_files_under("profiles") {
        repo.profiles.extend(load_kind::<ClusterProfile>(
            snapshot,
            file,
            "ClusterProfile",
            budget,
            &mut diags,
        ));
    }
    diags.extend(unlisted_problems(snapshot));
    (repo, diags)
}

/// Entries of `clusters/` and `profiles/` (or those directories themselves) that are not YAML
/// files but stand where config could be: a directory linked from outside the repository, or a
/// link that leads nowhere, is not read, and saying nothing would drop its clusters silently.
fn unlisted_problems(snapshot: &RepoSnapshot) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for dir in ["clusters", "profiles"] {
        let paths = std::iter::once(dir).chain(snapshot.paths_under(dir));
        for path in paths.filter(|p| !is_yaml(p)) {
            if is_link_not_read(snapshot, path)
                && let Err(d) = read_text(snapshot, path)
            {
                diags.push(d);
            }
        }
    }
    diags
}

/// Why a snapshot cannot be a fleet: it holds neither `fleet.yaml` nor any YAML file under
/// `clusters/`. Rendering it as an empty fleet would count every cluster as removed (with
/// `--prune`, deleted), so this is an error wherever a whole revision is rendered.
pub fn not_a_fleet(snapshot: &RepoSnapshot) -> Option<Diagnostic> {
    let has_fleet = FLEET_FILES.iter().any(|f| snapshot.contains(f));
    // A link standing for `clusters/` (or inside it) counts: it is reported on its own.
    let linked = |p: &str| is_link_not_read(snapshot, p);
    let has_clusters = snapshot.yaml_files_under("clusters").next().is_some()
        || linked("clusters")
        || snapshot.paths_under("clusters").any(linked);
    if has_fleet || has_clusters {
        return None;
    }
    Some(
        Diagnostic::error(
            "",
            Pos::default(),
            "the repository holds neither fleet.yaml nor any cluster file (clusters/**/*.yaml), \
             so it is not a config repository (an empty fleet would count every cluster as \
             removed)",
        )
        .help(
            "point cairn at the root of the fleet repository (the directory with fleet.yaml, \
             clusters/ and profiles/), or for a fleet kept in a subdirectory, at that directory",
        ),
    )
}

/// Whether `path` is a link cairn does not follow (out of the repository, or to nothing).
fn is_link_not_read(snapshot: &RepoSnapshot, path: &str) -> bool {
    matches!(
        snapshot.peek(path),
        Some(FileEntry::LinkOutside(_) | FileEntry::LinkBroken(_))
    )
}

/// The text of a file, or a diagnostic saying why it cannot be read.
pub fn read_text<'a>(snapshot: &'a RepoSnapshot, file: &str) -> Result<&'a str, Diagnostic> {
    let top = Pos { line: 1, col: 1 };
    match snapshot.get(file) {
        Some(FileEntry::Text(text)) => Ok(text),
        Some(FileEntry::Binary) => Err(Diagnostic::error(file, top, "file is not UTF-8 text")),
        Some(FileEntry::TooLarge(size)) => Err(Diagnostic::error(
            file,
            top,
            format!(
                "file is {size} bytes, over the {} MiB limit",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        )
        .help("split it into smaller files")),
        Some(FileEntry::LinkOutside(target)) => Err(Diagnostic::error(
            file,
            top,
            format!("symbolic link points outside the repository (to {target})"),
        )
        .help("copy the file into the repository instead of linking to it")),
        Some(FileEntry::LinkBroken(target)) => Err(Diagnostic::error(
            file,
            top,
            format!(
                "symbolic link points to {target}, which does not exist in the repository (or \
                 is a loop of links)"
            ),
        )
        .help("fix the link's target, or remove the link")),
        Some(FileEntry::Control { line, col, code }) => Err(Diagnostic::error(
            file,
            Pos {
                line: *line,
                col: *col,
            },
            format!(
                "{} in the file; YAML allows no control characters but tab, line feed and \
                 carriage return",
                describe_control(*code)
            ),
        )
        .help("remove it (a NUL byte usually means a binary file or a damaged copy)")),
        Some(FileEntry::OverBudget { size }) => Err(Diagnostic::error(
            file,
            top,
            format!(
                "not read: its {size} bytes would take the files read for this render past {} \
                 MiB (budget MAX_READ_BYTES, sized for the controller's 256 MiB)",
                MAX_READ_BYTES / 1024 / 1024
            ),
        )
        .help(
            "cairn reads fleet.yaml, clusters/, profiles/ and the files layers' globs match \
             (each path once): make those files smaller or narrow the globs",
        )),
        Some(FileEntry::Unreadable(why)) => Err(Diagnostic::error(
            file,
            top,
            format!("cannot read the file ({why})"),
        )),
        None => Err(Diagnostic::error(
            file,
            top,
            "no such file in the repository",
        )),
    }
}

/// A control character for a message: `a NUL byte (U+0000)`.
fn describe_control(code: u32) -> String {
    let name = match code {
        0 => "a NUL byte",
        0x1b => "an escape character",
        0x7f => "a DEL character",
        _ => "a control character",
    };
    format!("{name} (U+{code:04X})")
}

/// Parses a file's YAML documents, or a diagnostic at the syntax error.
pub fn read_documents(snapshot: &RepoSnapshot, file: &str) -> Result<Vec<YamlDoc>, Diagnostic> {
    let text = read_text(snapshot, file)?;
    parse_documents(text).map_err(|e| Diagnostic::error(file, e.pos, e.message))
}

fn load_kind<T: DeserializeOwned>(
    snapshot: &RepoSnapshot,
    file: &str,
    kind: &str,
    budget: &mut LoadBudget,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Located<T>> {
    if budget.diagnostics_full(file, diags) {
        return Vec::new();
    }
    let docs = match budget.read_documents(snapshot, file) {
        Ok(docs) => docs,
        Err(d) => {
            diags.push(d);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for doc in docs {
        if budget.diagnostics_full(file, diags) {
            break;
        }
        if let Some(located) = load_document(file, kind, doc, diags) {
            out.push(located);
        }
    }
    out
}

fn load_document<T: DeserializeOwned>(
    file: &str,
    expected_kind: &str,
    doc: YamlDoc,
    diags: &mut Vec<Diagnostic>,
) -> Option<Located<T>> {
    let error = |pointer: &str, msg: String| Diagnostic::error(file, doc.spans.value(pointer), msg);
    let Value::Object(map) = &doc.value else {
        diags.push(Diagnostic::error(
            file,
            doc.start,
            format!(
                "expected a `{expected_kind}` mapping, found {}",
                super::schema::describe(&doc.value)
            ),
        ));
        return None;
    };
    let kind = map.get("kind").and_then(Value::as_str);
    if kind != Some(expected_kind) {
        let found = kind
            .map(|k| format!("kind `{k}`"))
            .unwrap_or("no kind".into());
        let place = if expected_kind == "Fleet" {
            "fleet.yaml".to_string()
        } else {
            format!("{}/", file.split('/').next().unwrap_or(file))
        };
        diags.push(
            error(
                "/kind",
                format!("{place} holds `{expected_kind}` documents; found {found}"),
            )
            .help(format!("set `kind: {expected_kind}`, or move the document")),
        );
        return None;
    }
    if map.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        diags.push(
            error(
                "/apiVersion",
                format!("`apiVersion` of a {expected_kind} must be `{API_VERSION}`"),
            )
            .help(format!("set `apiVersion: {API_VERSION}`")),
        );
        return None;
    }
    let schema = schema_for_kind(expected_kind)?;
    let findings = check(&doc.value, &schema);
    if !findings.is_empty() {
        for f in findings {
            let pos = if f.at_key {
                doc.spans.key(&f.pointer)
            } else {
                doc.spans.value(&f.pointer)
            };
            let mut d = Diagnostic::error(file, pos, f.message);
            d.help = f.help;
            diags.push(d);
        }
        return None;
    }
    match serde_json::from_value(doc.value) {
        Ok(value) => Some(Located {
            file: file.to_string(),
            spans: doc.spans,
            doc: value,
        }),
        Err(e) => {
            diags.push(Diagnostic::error(
                file,
                doc.start,
                format!("invalid {expected_kind}: {e}"),
            ));
            None
        }
    }
}
