//! A config repository as cairn reads it: every path, by repository-relative name, and each
//! file's content read on first use only.
//!
//! Loading and rendering read only from a snapshot, so they are pure: the same snapshot can be
//! taken from a directory (here) or from a git tree (`source`, for previews without checkout).
//!
//! # Bounded reading
//!
//! A snapshot lists every path of the repository but reads a file only when something asks for
//! it ([`RepoSnapshot::get`]): loading asks for `fleet.yaml`, `clusters/**` and `profiles/**`,
//! the render for the files the layers' globs match, and nothing else is ever read, however
//! large. Contents come from a [`FileSource`] (a directory, or a git object database); each
//! distinct content is read once and shared between the paths that hold it (git blobs by id),
//! and each path's first read is charged to [`MAX_READ_BYTES`], so a repository that names the
//! same large blob under many paths costs its size once in memory and at most the budget in
//! work. Reads are thread-safe (`OnceLock`): the render asks from many threads at once.
//!
//! Listing is bounded too ([`ListingBudget`]): entries walked, directory depth and the bytes of
//! paths (and, for git, of tree objects) are capped, so a small `.git` whose trees repeat one
//! subtree cannot make a listing of 10⁹ paths.
//!
//! # Budgets
//!
//! The controller runs in 256 MiB. The 10,000-cluster synthetic fleet (`cairn::synth`,
//! BENCHMARKS.md) is 10,020 files holding 8.7 MiB of text, and its render peaks at 149 MiB:
//! the text is a small part of what its parsed model and bundles take. The budgets below keep
//! that fleet several times over and bound what a hostile repository can make cairn list and
//! read; what parsing and rendering make of the text read is bounded by the render budgets.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Largest file cairn reads; larger ones are refused where they are used.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Bytes of file content one snapshot hands out, each path counted once on its first read
/// (the same content under two paths counts twice: each is parsed on its own).
///
/// 32 MiB: the 10,000-cluster synthetic fleet reads 8.7 MiB, so this keeps a fleet of over three
/// times that size; the text held is then at most 32 MiB (each distinct content once), an
/// eighth of the controller's 256 MiB. A repository that names one 9 MiB blob under 200 paths
/// reads it once and hands out three paths' worth; the other paths are refused with a
/// diagnostic naming this budget.
pub const MAX_READ_BYTES: u64 = 32 * 1024 * 1024;

/// Entries (files, directories, links, submodules) one listing walks, counting every time a
/// repeated subtree or a followed link is walked again, and each step of resolving a link.
///
/// 100,000: ten times the 10,000-cluster fleet's 10,020 files; a listed entry costs about 200
/// bytes, so a listing at the budget takes some 20 MiB.
pub const MAX_REPO_ENTRIES: usize = 100_000;

/// Deepest directory nesting of a listing (a path of 64 directories and a file).
///
/// A fleet nests a handful of levels (`clusters/<region>/<env>/<name>.yaml`); 64 leaves room
/// for any layout and stops trees that nest themselves.
pub const MAX_REPO_DEPTH: usize = 64;

/// Bytes of the paths one listing keeps, plus, for git, the bytes of the tree objects it reads.
///
/// 32 MiB: the 10,000-cluster fleet's paths take under 1 MiB, and a listing at
/// [`MAX_REPO_ENTRIES`] with paths of 300 bytes fits; held at most once, it is an eighth of the
/// controller's 256 MiB.
pub const MAX_LISTING_BYTES: usize = 32 * 1024 * 1024;

/// The root entries that make a directory a config repository.
pub const ROOT_MARKERS: [&str; 3] = ["fleet.yaml", "fleet.yml", "clusters"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileEntry {
    Text(Arc<str>),
    /// Not UTF-8.
    Binary,
    TooLarge(u64),
    /// A symbolic link whose target lies outside the repository.
    LinkOutside(String),
    /// A symbolic link that leads nowhere (its target, as written, does not exist or is a loop
    /// of links). Listed, not left out: a link standing for a cluster file or directory that
    /// vanished would otherwise drop its clusters silently (and `--prune` would delete them).
    LinkBroken(String),
    /// UTF-8, with a character YAML does not allow at 1-based `line`:`col` (in characters): NUL,
    /// another C0 control but tab, line feed and carriage return, DEL, or a C1 control but NEL.
    /// `code` is the character's code point.
    Control {
        line: u32,
        col: u32,
        code: u32,
    },
    /// Not read: its `size` bytes would take the snapshot past [`MAX_READ_BYTES`].
    OverBudget {
        size: u64,
    },
    /// Listed, but reading it failed (why, from the operating system or the object database).
    Unreadable(String),
}

/// Where a lazily read file's content comes from: a directory or a git object database.
///
/// Contents are numbered by the source when it lists them (`index`); paths holding the same
/// content may share an index, and then it is read once.
pub trait FileSource: Send + Sync {
    /// The size of content `index` in bytes, without reading it.
    fn size(&self, index: usize) -> Result<u64, String>;
    /// Content `index`, classified with [`classify`]. Only called when its size is at most
    /// [`MAX_FILE_BYTES`].
    fn load(&self, index: usize) -> FileEntry;
}

/// A path of a listing: an entry already known, or a content of the source.
#[derive(Clone, Debug)]
pub enum Listed {
    Entry(FileEntry),
    Content {
        index: usize,
        /// An identity of the content (a git blob id): equal ids mean equal contents, so two
        /// snapshots can be compared without reading them.
        id: Option<[u8; 20]>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct RepoSnapshot {
    files: BTreeMap<String, Slot>,
}

#[derive(Clone, Debug)]
enum Slot {
    Ready(FileEntry),
    Lazy(Arc<LazyFile>),
}

/// One path whose content is read on first use.
struct LazyFile {
    store: Arc<Store>,
    index: usize,
    id: Option<[u8; 20]>,
    entry: OnceLock<FileEntry>,
}

impl fmt::Debug for LazyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyFile")
            .field("index", &self.index)
            .field("entry", &self.entry.get())
            .finish_non_exhaustive()
    }
}

/// A source's contents, each read once, and the bytes handed out so far.
struct Store {
    source: Box<dyn FileSource>,
    contents: Vec<Content>,
    charged: AtomicU64,
}

#[derive(Default)]
struct Content {
    size: OnceLock<Result<u64, String>>,
    entry: OnceLock<FileEntry>,
}

impl Store {
    fn new(source: Box<dyn FileSource>, contents: usize) -> Store {
        Store {
            source,
            contents: (0..contents).map(|_| Content::default()).collect(),
            charged: AtomicU64::new(0),
        }
    }

    /// The entry of a path holding content `index`: its size first (too large, or over the
    /// budget, without reading it), then the content, read once for every path that holds it.
    fn entry_for_path(&self, index: usize) -> FileEntry {
        let Some(content) = self.contents.get(index) else {
            return FileEntry::Unreadable(format!("no content {index} in the listing"));
        };
        let size = match content.size.get_or_init(|| self.source.size(index)) {
            Ok(size) => *size,
            Err(why) => return FileEntry::Unreadable(why.clone()),
        };
        if size > MAX_FILE_BYTES {
            return FileEntry::TooLarge(size);
        }
        let charged = self
            .charged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(size).filter(|&n| n <= MAX_READ_BYTES)
            });
        if charged.is_err() {
            return FileEntry::OverBudget { size };
        }
        content
            .entry
            .get_or_init(|| self.source.load(index))
            .clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the repository at {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory; --repo must name the root of a config repository")]
    NotADirectory { path: String },
    #[error(
        "{path} is not a config repository: it holds neither fleet.yaml nor a clusters/ \
         directory{hint}; pass --repo the root of the fleet repository (the directory that \
         holds fleet.yaml, clusters/ and profiles/)"
    )]
    NotAFleetRepository {
        path: String,
        /// A guess at the mistake, starting with `; ` (or empty).
        hint: String,
    },
    #[error(
        "the repository has more than {MAX_REPO_ENTRIES} entries (budget MAX_REPO_ENTRIES, \
         counting directories walked again through repeated subtrees and links), stopped at \
         `{at}`; keep generated or vendored trees out of the config repository"
    )]
    TooManyEntries { at: String },
    #[error(
        "`{at}` is nested more than {MAX_REPO_DEPTH} directories deep (budget MAX_REPO_DEPTH); \
         a tree that contains itself is the usual cause"
    )]
    TooDeep { at: String },
    #[error(
        "the repository's paths and directory listings take more than {} MiB (budget \
         MAX_LISTING_BYTES), stopped at `{at}`; keep generated or vendored trees out of the \
         config repository",
        MAX_LISTING_BYTES / 1024 / 1024
    )]
    ListingTooLarge { at: String },
}

/// What one listing has walked, against [`MAX_REPO_ENTRIES`], [`MAX_REPO_DEPTH`] and
/// [`MAX_LISTING_BYTES`].
#[derive(Debug, Default)]
pub struct ListingBudget {
    entries: usize,
    bytes: usize,
}

impl ListingBudget {
    /// One entry at `path`, `depth` directories below the root (1 for a top-level entry).
    pub fn entry(&mut self, path: &str, depth: usize) -> Result<(), SnapshotError> {
        self.step(path)?;
        if depth > MAX_REPO_DEPTH + 1 {
            return Err(SnapshotError::TooDeep { at: clip(path) });
        }
        self.bytes(path.len(), path)
    }

    /// One unit of work that is not an entry (a step of resolving a link).
    pub fn step(&mut self, at: &str) -> Result<(), SnapshotError> {
        self.entries += 1;
        if self.entries > MAX_REPO_ENTRIES {
            return Err(SnapshotError::TooManyEntries { at: clip(at) });
        }
        Ok(())
    }

    /// `n` bytes of listing read or kept at `at`.
    pub fn bytes(&mut self, n: usize, at: &str) -> Result<(), SnapshotError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_LISTING_BYTES {
            return Err(SnapshotError::ListingTooLarge { at: clip(at) });
        }
        Ok(())
    }
}

/// A path for a message: its first 200 characters.
fn clip(path: &str) -> String {
    match path.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &path[..i]),
        None => path.to_string(),
    }
}

impl RepoSnapshot {
    /// Builds a snapshot from files given in memory (tests, examples).
    pub fn from_files<I, P, C>(files: I) -> RepoSnapshot
    where
        I: IntoIterator<Item = (P, C)>,
        P: Into<String>,
        C: AsRef<[u8]>,
    {
        let files = files
            .into_iter()
            .map(|(path, content)| (path.into(), Slot::Ready(classify(content.as_ref()))))
            .collect();
        RepoSnapshot { files }
    }

    /// Builds a snapshot from entries already classified.
    pub fn from_entries(files: BTreeMap<String, FileEntry>) -> RepoSnapshot {
        let files = files
            .into_iter()
            .map(|(k, v)| (k, Slot::Ready(v)))
            .collect();
        RepoSnapshot { files }
    }

    /// Builds a snapshot from a listing whose contents `source` reads on first use;
    /// `contents` is the number of content indices the listing uses.
    pub fn from_listing(
        source: Box<dyn FileSource>,
        contents: usize,
        files: BTreeMap<String, Listed>,
    ) -> RepoSnapshot {
        let store = Arc::new(Store::new(source, contents));
        let files = files
            .into_iter()
            .map(|(path, listed)| {
                let slot = match listed {
                    Listed::Entry(entry) => Slot::Ready(entry),
                    Listed::Content { index, id } => Slot::Lazy(Arc::new(LazyFile {
                        store: Arc::clone(&store),
                        index,
                        id,
                        entry: OnceLock::new(),
                    })),
                };
                (path, slot)
            })
            .collect();
        RepoSnapshot { files }
    }

    /// Lists every file below `root` (skipping `.git`); contents are read on first use.
    ///
    /// `root` must hold `fleet.yaml` or `clusters/` (else it is not a config repository, and
    /// treating it as an empty fleet would count every cluster as removed). Symbolic links are
    /// followed while they stay inside the repository; one that leads out of it is an entry
    /// [`FileEntry::LinkOutside`] (and is not entered); a link back to a directory it is in adds
    /// nothing and is not followed; a dangling link is an entry [`FileEntry::LinkBroken`].
    pub fn from_dir(root: &Path) -> Result<RepoSnapshot, SnapshotError> {
        let read_err = |path: &Path, source| SnapshotError::Read {
            path: path.display().to_string(),
            source,
        };
        if !root.is_dir() {
            return Err(SnapshotError::NotADirectory {
                path: root.display().to_string(),
            });
        }
        check_root_dir(root)?;
        let canonical_root = root.canonicalize().map_err(|e| read_err(root, e))?;
        let mut budget = ListingBudget::default();
        let mut files = BTreeMap::new();
        let mut paths: Vec<(PathBuf, u64)> = Vec::new();
        let mut walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git");
        while let Some(item) = walker.next() {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    // A link to a directory it is in (its files are listed already): left out,
                    // as in git snapshots.
                    if e.loop_ancestor().is_some() {
                        budget.step(&path.display().to_string())?;
                        continue;
                    }
                    if e.depth() > 0
                        && let Some(target) = dangling_target(&path)
                        && let Some(key) = path.strip_prefix(root).ok().and_then(repo_key)
                    {
                        budget.entry(&key, e.depth())?;
                        files.insert(key, Listed::Entry(FileEntry::LinkBroken(target)));
                        continue;
                    }
                    return Err(read_err(&path, e.into()));
                }
            };
            if entry.depth() == 0 {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(root) else {
                continue;
            };
            let Some(key) = repo_key(relative) else {
                budget.step(&relative.display().to_string())?;
                continue;
            };
            budget.entry(&key, entry.depth())?;
            let file_type = entry.file_type();
            let mut read_from = entry.path().to_path_buf();
            if entry.path_is_symlink() {
                match entry.path().canonicalize() {
                    // `.git` is not part of the repository's files, linked or not.
                    Ok(target)
                        if !target.starts_with(&canonical_root)
                            || target.starts_with(canonical_root.join(".git")) =>
                    {
                        if file_type.is_dir() {
                            walker.skip_current_dir();
                        }
                        let target = target.display().to_string();
                        files.insert(key, Listed::Entry(FileEntry::LinkOutside(target)));
                        continue;
                    }
                    // Read the file the link names, so a later change of the link cannot
                    // lead out of the repository.
                    Ok(target) => read_from = target,
                    Err(_) => continue,
                }
            }
            if !file_type.is_file() {
                continue;
            }
            let size = entry
                .metadata()
                .map_err(|e| read_err(entry.path(), e.into()))?;
            files.insert(
                key,
                Listed::Content {
                    index: paths.len(),
                    id: None,
                },
            );
            paths.push((read_from, size.len()));
        }
        let contents = paths.len();
        Ok(RepoSnapshot::from_listing(
            Box::new(DirFiles { paths }),
            contents,
            files,
        ))
    }

    /// The entry of `path`, its content read now if it was not yet.
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.files.get(path).map(Slot::entry)
    }

    /// Whether `path` is in the snapshot (nothing is read).
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The stored key and entry of `path`, so callers can borrow the path from the snapshot.
    pub fn get_key_value(&self, path: &str) -> Option<(&str, &FileEntry)> {
        self.files
            .get_key_value(path)
            .map(|(k, v)| (k.as_str(), v.entry()))
    }

    /// Every path in the snapshot, sorted (nothing is read).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Paths below `dir/` whose name ends in `.yaml` or `.yml`, sorted.
    pub fn yaml_files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.under(dir).filter(|k| is_yaml(k))
    }

    /// Paths below `dir/`, sorted (nothing is read).
    pub fn paths_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.under(dir)
    }

    fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{dir}/");
        self.files
            .range(prefix.clone()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(&prefix))
    }

    /// The entry of `path` when it is known without reading a file: a link out of the
    /// repository, say. `None` for files not read yet and for paths not in the snapshot.
    pub fn peek(&self, path: &str) -> Option<&FileEntry> {
        match self.files.get(path)? {
            Slot::Ready(entry) => Some(entry),
            Slot::Lazy(lazy) => lazy.entry.get(),
        }
    }

    /// Whether `path` holds the same thing in both snapshots (or in neither), read only when
    /// the listings cannot tell (git blob ids can).
    pub fn same_entry(&self, other: &RepoSnapshot, path: &str) -> bool {
        match (self.files.get(path), other.files.get(path)) {
            (None, None) => true,
            (Some(Slot::Lazy(a)), Some(Slot::Lazy(b))) if Arc::ptr_eq(a, b) => true,
            (Some(Slot::Lazy(a)), Some(Slot::Lazy(b))) if a.id.is_some() && b.id.is_some() => {
                a.id == b.id
            }
            (Some(a), Some(b)) => a.entry() == b.entry(),
            _ => false,
        }
    }

    /// The snapshot with only the paths `keep` accepts; contents already read, or to be read,
    /// are shared with this one.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> RepoSnapshot {
        let files = self
            .files
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        RepoSnapshot { files }
    }

    /// The files below `dir` (a repository-relative directory such as `fleets/prod`), with
    /// paths relative to it: a config repository kept in a subdirectory of a larger one.
    /// Empty when nothing is there.
    pub fn subtree(&self, dir: &str) -> RepoSnapshot {
        let dir = dir.trim_matches('/');
        if dir.is_empty() || dir == "." {
            return self.clone();
        }
        let prefix = format!("{dir}/");
        let files = self
            .files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
            .collect();
        RepoSnapshot { files }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Slot {
    fn entry(&self) -> &FileEntry {
        match self {
            Slot::Ready(entry) => entry,
            Slot::Lazy(lazy) => lazy
                .entry
                .get_or_init(|| lazy.store.entry_for_path(lazy.index)),
        }
    }
}

pub fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// `fleet.yaml` or `clusters/` at the root of a directory, else why it is not a config
/// repository.
fn check_root_dir(root: &Path) -> Result<(), SnapshotError> {
    if ROOT_MARKERS
        .iter()
        .any(|m| std::fs::symlink_metadata(root.join(m)).is_ok())
    {
        return Ok(());
    }
    let name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let empty = std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
    let hint = match name.as_deref() {
        _ if empty => "; it is empty".to_string(),
        Some(dir @ ("clusters" | "profiles")) => format!(
            "; it is itself named `{dir}`, so its parent directory is probably the repository"
        ),
        _ => String::new(),
    };
    Err(SnapshotError::NotAFleetRepository {
        path: root.display().to_string(),
        hint,
    })
}

/// A symbolic link whose target does not exist.
/// The target of `path` as written, when `path` is a link that leads nowhere.
fn dangling_target(path: &Path) -> Option<String> {
    let link = std::fs::read_link(path).ok()?;
    std::fs::metadata(path)
        .is_err()
        .then(|| link.display().to_string())
}

/// Files of a directory, by the path to read (a link's target for links).
struct DirFiles {
    paths: Vec<(PathBuf, u64)>,
}

impl FileSource for DirFiles {
    fn size(&self, index: usize) -> Result<u64, String> {
        self.paths
            .get(index)
            .map(|(_, size)| *size)
            .ok_or_else(|| format!("no file {index} in the listing"))
    }

    fn load(&self, index: usize) -> FileEntry {
        let Some((path, _)) = self.paths.get(index) else {
            return FileEntry::Unreadable(format!("no file {index} in the listing"));
        };
        let mut bytes = Vec::new();
        // At most one byte past the limit: a file that grew since it was listed is still
        // refused without reading it all.
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
        match read {
            Ok(_) if bytes.len() as u64 > MAX_FILE_BYTES => {
                let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
                FileEntry::TooLarge(size)
            }
            Ok(_) => classify(&bytes),
            Err(e) => FileEntry::Unreadable(e.to_string()),
        }
    }
}

/// A file's bytes as cairn sees them: too large, not UTF-8, holding a control character YAML
/// does not allow (with its position), or text (a leading byte order mark dropped, as YAML
/// allows one there).
pub fn classify(bytes: &[u8]) -> FileEntry {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return FileEntry::TooLarge(bytes.len() as u64);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return FileEntry::Binary;
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match forbidden_control(text) {
        Some((line, col, code)) => FileEntry::Control { line, col, code },
        None => FileEntry::Text(Arc::from(text)),
    }
}

/// The first character YAML's printable set excludes among the controls, with its 1-based line
/// and column (columns in characters, as the YAML parser counts them).
fn forbidden_control(text: &str) -> Option<(u32, u32, u32)> {
    let bytes = text.as_bytes();
    let at = bytes.iter().enumerate().position(|(i, &b)| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || b == 0x7f
            // U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8; U+0085 (NEL) is a YAML line break.
            || (b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x84 | 0x86..=0x9f)))
    })?;
    let (mut line, mut col) = (1u32, 1u32);
    let mut chars = text[..at].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => (line, col) = (line.saturating_add(1), 1),
            // A lone carriage return ends a line too; before a line feed it is part of it.
            '\r' if chars.peek() != Some(&'\n') => (line, col) = (line.saturating_add(1), 1),
            '\r' => {}
            _ => col = col.saturating_add(1),
        }
    }
    let code = text[at..].chars().next().map_or(0, u32::from);
    Some((line, col, code))
}

/// `a/b.yaml` for a relative path made only of normal components.
fn repo_key(relative: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in relative.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_subtree_has_paths_relative_to_its_directory() {
        let snap = super::RepoSnapshot::from_files([
            ("fleets/prod/fleet.yaml", "a"),
            ("fleets/prod/clusters/c.yaml", "b"),
            ("fleets/prodx/fleet.yaml", "c"),
            ("README.md", "d"),
        ]);
        let sub = snap.subtree("/fleets/prod/");
        let paths: Vec<&str> = sub.paths().collect();
        assert_eq!(paths, ["clusters/c.yaml", "fleet.yaml"]);
        assert_eq!(snap.subtree(".").paths().count(), 4);
        assert!(snap.subtree("nowhere").is_empty());
    }

    use super::*;

    #[test]
    fn reads_a_directory_and_refuses_links_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("clusters/prod")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("clusters/prod/a.yaml"), "a: 1").unwrap();
        std::fs::write(dir.path().join(".git/config"), "x").unwrap();
        std::fs::write(outside.path().join("secret.yaml"), "s: 1").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.yaml"),
            dir.path().join("clusters/link.yaml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("clusters/outdir")).unwrap();
        std::os::unix::fs::symlink("prod", dir.path().join("clusters/same")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("clusters/up")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("clusters/gone.yaml")).unwrap();
        let snap = RepoSnapshot::from_dir(dir.path()).unwrap();
        let paths: Vec<&str> = snap.paths().collect();
        assert_eq!(
            paths,
            vec![
                "clusters/gone.yaml",
                "clusters/link.yaml",
                "clusters/outdir",
                "clusters/prod/a.yaml",
                "clusters/same/a.yaml"
            ]
        );
        assert_eq!(
            snap.peek("clusters/gone.yaml"),
            Some(&FileEntry::LinkBroken("nowhere".into()))
        );
        assert!(matches!(
            snap.get("clusters/link.yaml"),
            Some(FileEntry::LinkOutside(_))
        ));
        assert!(matches!(
            snap.peek("clusters/outdir"),
            Some(FileEntry::LinkOutside(_))
        ));
        assert_eq!(snap.peek("clusters/same/a.yaml"), None, "not read yet");
        assert_eq!(
            snap.get("clusters/same/a.yaml"),
            Some(&FileEntry::Text("a: 1".into()))
        );
        assert_eq!(
            snap.yaml_files_under("clusters").collect::<Vec<_>>(),
            vec![
                "clusters/gone.yaml",
                "clusters/link.yaml",
                "clusters/prod/a.yaml",
                "clusters/same/a.yaml"
            ]
        );
    }

    #[test]
    fn a_directory_without_fleet_or_clusters_is_refused() {
        let empty = tempfile::tempdir().unwrap();
        let err = RepoSnapshot::from_dir(empty.path()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::NotAFleetRepository { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("it is empty"), "{err}");
        let clusters = empty.path().join("clusters");
        std::fs::create_dir(&clusters).unwrap();
        std::fs::write(clusters.join("a.yaml"), "a: 1").unwrap();
        assert!(RepoSnapshot::from_dir(empty.path()).is_ok());
        let err = RepoSnapshot::from_dir(&clusters).unwrap_err().to_string();
        assert!(err.contains("its parent directory"), "{err}");
    }

    #[test]
    fn control_characters_are_found_with_their_position() {
        assert_eq!(
            classify(b"a: 1\nb: x\0y\n"),
            FileEntry::Control {
                line: 2,
                col: 5,
                code: 0
            }
        );
        assert_eq!(
            classify("k: é\u{1b}[31m".as_bytes()),
            FileEntry::Control {
                line: 1,
                col: 5,
                code: 0x1b
            }
        );
        assert_eq!(
            classify("a\r\nb\rc\u{9b}".as_bytes()),
            FileEntry::Control {
                line: 3,
                col: 2,
                code: 0x9b
            }
        );
        assert_eq!(
            classify("\u{feff}a: 1\tb\r\n\u{85}".as_bytes()),
            FileEntry::Text("a: 1\tb\r\n\u{85}".into())
        );
        assert_eq!(classify(b"\xff"), FileEntry::Binary);
    }

    /// Counts loads, to show each content is read once and only on use.
    struct Counting {
        loads: std::sync::atomic::AtomicUsize,
        size: u64,
    }

    impl FileSource for Counting {
        fn size(&self, _: usize) -> Result<u64, String> {
            Ok(self.size)
        }
        fn load(&self, _: usize) -> FileEntry {
            self.loads.fetch_add(1, Ordering::Relaxed);
            FileEntry::Text("x".repeat(self.size as usize).into())
        }
    }

    #[test]
    fn shared_contents_are_read_once_and_each_path_is_charged() {
        let size = 9 * 1024 * 1024;
        let source = Arc::new(Counting {
            loads: Default::default(),
            size,
        });
        struct Shared(Arc<Counting>);
        impl FileSource for Shared {
            fn size(&self, i: usize) -> Result<u64, String> {
                self.0.size(i)
            }
            fn load(&self, i: usize) -> FileEntry {
                self.0.load(i)
            }
        }
        let files = (0..200)
            .map(|i| (format!("f{i:03}"), Listed::Content { index: 0, id: None }))
            .collect();
        let snap = RepoSnapshot::from_listing(Box::new(Shared(Arc::clone(&source))), 1, files);
        assert_eq!(
            source.loads.load(Ordering::Relaxed),
            0,
            "nothing read up front"
        );
        let entries: Vec<&FileEntry> = snap.paths().filter_map(|p| snap.get(p)).collect();
        assert_eq!(source.loads.load(Ordering::Relaxed), 1, "read once");
        let texts = entries
            .iter()
            .filter(|e| matches!(e, FileEntry::Text(_)))
            .count();
        assert_eq!(texts as u64, MAX_READ_BYTES / size);
        assert!(entries.contains(&&FileEntry::OverBudget { size }));
    }

    #[test]
    fn listing_budgets_name_themselves() {
        let mut budget = ListingBudget::default();
        let err = (0..=MAX_REPO_ENTRIES)
            .try_for_each(|_| budget.entry("a/b", 2))
            .unwrap_err();
        assert!(err.to_string().contains("MAX_REPO_ENTRIES"), "{err}");
        let err = ListingBudget::default()
            .entry("deep", MAX_REPO_DEPTH + 2)
            .unwrap_err();
        assert!(err.to_string().contains("MAX_REPO_DEPTH"), "{err}");
    }
}
