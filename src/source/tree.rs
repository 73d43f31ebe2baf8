//! Reading a git tree into a `RepoSnapshot` straight from the object database.
//!
//! The tree is listed up front, within a [`ListingBudget`] (entries walked, depth, bytes of
//! paths and tree objects): a `.git` of a few hundred KB can hold trees that repeat one subtree
//! into 10⁹ paths, and the walk stops at the budget with an error that names it. Blobs are not
//! read while listing: the snapshot reads each distinct blob (by id) once, on first use, and
//! shares its text between the paths that hold it (see `model::snapshot`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::Mutex;

use git2::{ErrorCode, ObjectType, Odb, Oid, Repository, Tree};

use crate::model::snapshot::{
    FileEntry, FileSource, Listed, ListingBudget, MAX_FILE_BYTES, RepoSnapshot, SnapshotError,
    classify,
};

const MODE_LINK: i32 = 0o120000;
/// Links followed while resolving one link, as Linux's `MAXSYMLINKS`.
const MAX_LINK_HOPS: usize = 40;
/// Longest link target read, as Linux's `PATH_MAX`; a longer one resolves to nothing.
const MAX_LINK_BYTES: usize = 4096;

/// Why a tree could not be listed.
#[derive(Debug)]
pub(crate) enum Failed {
    Git(git2::Error),
    Budget(SnapshotError),
}

impl From<git2::Error> for Failed {
    fn from(e: git2::Error) -> Failed {
        Failed::Git(e)
    }
}

impl From<SnapshotError> for Failed {
    fn from(e: SnapshotError) -> Failed {
        Failed::Budget(e)
    }
}

/// Every file of the tree `root`; links are followed while they stay inside the tree (files and
/// directories), links out of it are entries [`FileEntry::LinkOutside`], links that lead
/// nowhere [`FileEntry::LinkBroken`]; submodules and links back to a directory they are in are
/// left out. The repository is kept by the
/// snapshot to read blobs on first use.
pub(crate) fn read_tree(repo: Repository, root: Oid) -> Result<RepoSnapshot, Failed> {
    let listing = {
        let tree = repo.find_tree(root)?;
        list(&repo, &tree)?
    };
    let contents = listing.blobs.len();
    let source = GitBlobs {
        repo: Mutex::new(repo),
        blobs: listing.blobs,
    };
    Ok(RepoSnapshot::from_listing(
        Box::new(source),
        contents,
        listing.files,
    ))
}

struct Listing {
    files: BTreeMap<String, Listed>,
    /// Distinct blobs, by content index.
    blobs: Vec<Oid>,
}

/// A directory being walked: its path as listed (through links) and where it really is.
struct Dir {
    /// The path of the listing (`a/link/b`), empty at the root.
    listed: String,
    /// Its components in the tree, after following links.
    real: Vec<String>,
    tree: Oid,
    depth: usize,
    parent: Option<Rc<Dir>>,
}

impl Dir {
    /// Whether `real` is this directory, one it is listed in, or a directory above it: a link
    /// there would list this directory again, forever.
    fn loops_back_to(&self, real: &[String]) -> bool {
        if self.real.starts_with(real) {
            return true;
        }
        let mut dir = self.parent.as_deref();
        while let Some(d) = dir {
            if d.real == real {
                return true;
            }
            dir = d.parent.as_deref();
        }
        false
    }
}

fn list(repo: &Repository, root: &Tree<'_>) -> Result<Listing, Failed> {
    let odb = repo.odb()?;
    let mut budget = ListingBudget::default();
    let mut files = BTreeMap::new();
    let mut blobs = Vec::new();
    let mut index_of: HashMap<Oid, usize> = HashMap::new();
    let mut content = |oid: Oid| {
        let index = *index_of.entry(oid).or_insert_with(|| {
            blobs.push(oid);
            blobs.len() - 1
        });
        let mut id = [0u8; 20];
        let bytes = oid.as_bytes();
        let n = bytes.len().min(id.len());
        id[..n].copy_from_slice(&bytes[..n]);
        Listed::Content {
            index,
            id: Some(id),
        }
    };
    let mut stack = vec![Rc::new(Dir {
        listed: String::new(),
        real: Vec::new(),
        tree: root.id(),
        depth: 0,
        parent: None,
    })];
    while let Some(dir) = stack.pop() {
        let tree = read_tree_object(repo, &odb, &dir, &mut budget)?;
        for entry in tree.iter() {
            // Keys are UTF-8 paths, as in `RepoSnapshot::from_dir`.
            let Ok(name) = entry.name() else {
                budget.step(&dir.listed)?;
                continue;
            };
            let key = join(&dir.listed, name);
            budget.entry(&key, dir.depth + 1)?;
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let mut real = dir.real.clone();
                    real.push(name.to_string());
                    stack.push(Rc::new(Dir {
                        listed: key,
                        real,
                        tree: entry.id(),
                        depth: dir.depth + 1,
                        parent: Some(Rc::clone(&dir)),
                    }));
                }
                Some(ObjectType::Blob) if entry.filemode() == MODE_LINK => {
                    let Some(target) = link_target(repo, &odb, entry.id(), &mut budget, &key)?
                    else {
                        continue;
                    };
                    match resolve_link(repo, root, &dir.real, &target, &mut budget, &key)? {
                        Resolved::File(oid) => {
                            files.insert(key, content(oid));
                        }
                        Resolved::Outside => {
                            files.insert(key, Listed::Entry(FileEntry::LinkOutside(target)));
                        }
                        Resolved::Dir(real, tree) if !dir.loops_back_to(&real) => {
                            stack.push(Rc::new(Dir {
                                listed: key,
                                real,
                                tree,
                                depth: dir.depth + 1,
                                parent: Some(Rc::clone(&dir)),
                            }));
                        }
                        Resolved::Nothing => {
                            files.insert(key, Listed::Entry(FileEntry::LinkBroken(target)));
                        }
                        Resolved::Dir(..) => {}
                    }
                }
                Some(ObjectType::Blob) => {
                    files.insert(key, content(entry.id()));
                }
                // Submodules (commits) and anything else: not part of this repository's files.
                _ => {}
            }
        }
    }
    Ok(Listing { files, blobs })
}

/// A tree object, its size charged to the listing budget before it is parsed (a tree is read
/// whole, and a repeated subtree is read again each time it is walked).
fn read_tree_object<'r>(
    repo: &'r Repository,
    odb: &Odb<'_>,
    dir: &Dir,
    budget: &mut ListingBudget,
) -> Result<Tree<'r>, Failed> {
    let (size, _) = odb.read_header(dir.tree)?;
    let at = if dir.listed.is_empty() {
        "/"
    } else {
        &dir.listed
    };
    budget.bytes(size, at)?;
    Ok(repo.find_tree(dir.tree)?)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        return name.to_string();
    }
    format!("{dir}/{name}")
}

/// A link's target, or `None` when it is longer than any path (then it leads nowhere).
fn link_target(
    repo: &Repository,
    odb: &Odb<'_>,
    oid: Oid,
    budget: &mut ListingBudget,
    at: &str,
) -> Result<Option<String>, Failed> {
    let (size, _) = odb.read_header(oid)?;
    if size > MAX_LINK_BYTES {
        return Ok(None);
    }
    budget.bytes(size, at)?;
    Ok(Some(
        String::from_utf8_lossy(repo.find_blob(oid)?.content()).into_owned(),
    ))
}

#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    File(Oid),
    /// A directory of the tree: its components and its tree.
    Dir(Vec<String>, Oid),
    Outside,
    /// Dangling, a loop, or through a submodule.
    Nothing,
}

/// Resolves `target`, written in a link inside `link_dir`, the way the kernel would on a
/// checkout: component by component, following links met on the way, with `..` applied to the
/// path reached so far. Leaving the root at any point counts as outside. Each component looked
/// up is a step of the listing budget.
fn resolve_link(
    repo: &Repository,
    root: &Tree<'_>,
    link_dir: &[String],
    target: &str,
    budget: &mut ListingBudget,
    at: &str,
) -> Result<Resolved, Failed> {
    if target.starts_with('/') {
        return Ok(Resolved::Outside);
    }
    let odb = repo.odb()?;
    let mut reached: Vec<String> = link_dir.to_vec();
    let mut pending: VecDeque<String> = components(target).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        budget.step(at)?;
        if part == ".." {
            if reached.pop().is_none() {
                return Ok(Resolved::Outside);
            }
            continue;
        }
        let candidate = reached
            .iter()
            .map(String::as_str)
            .chain([part.as_str()])
            .collect::<Vec<_>>()
            .join("/");
        let entry = match root.get_path(Path::new(&candidate)) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Resolved::Nothing),
            Err(e) => return Err(e.into()),
        };
        match entry.kind() {
            Some(ObjectType::Tree) => reached.push(part),
            Some(ObjectType::Blob) if entry.filemode() == MODE_LINK => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Ok(Resolved::Nothing);
                }
                let Some(next) = link_target(repo, &odb, entry.id(), budget, at)? else {
                    return Ok(Resolved::Nothing);
                };
                if next.starts_with('/') {
                    return Ok(Resolved::Outside);
                }
                // The inner link is relative to its own directory, which is `reached`.
                for c in components(&next).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(c);
                }
            }
            // A file in the middle of a path (`file/x`) resolves to nothing, as ENOTDIR.
            Some(ObjectType::Blob) if pending.is_empty() => return Ok(Resolved::File(entry.id())),
            _ => return Ok(Resolved::Nothing),
        }
    }
    // Every component was a directory: the link names one.
    let tree = if reached.is_empty() {
        root.id()
    } else {
        match root.get_path(Path::new(&reached.join("/"))) {
            Ok(entry) => entry.id(),
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Resolved::Nothing),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Resolved::Dir(reached, tree))
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}

/// The blobs of a listing, read from the repository on first use (one at a time: a
/// `Repository` is not shared between threads).
struct GitBlobs {
    repo: Mutex<Repository>,
    blobs: Vec<Oid>,
}

impl GitBlobs {
    fn oid(&self, index: usize) -> Result<Oid, String> {
        self.blobs
            .get(index)
            .copied()
            .ok_or_else(|| format!("no blob {index} in the listing"))
    }
}

impl FileSource for GitBlobs {
    /// From the object header: a large blob is never inflated to learn its size.
    fn size(&self, index: usize) -> Result<u64, String> {
        let oid = self.oid(index)?;
        let repo = self.repo.lock().unwrap_or_else(|e| e.into_inner());
        let header = repo.odb().and_then(|odb| odb.read_header(oid));
        header
            .map(|(size, _)| size as u64)
            .map_err(|e| format!("blob {oid}: {}", e.message()))
    }

    fn load(&self, index: usize) -> FileEntry {
        let oid = match self.oid(index) {
            Ok(oid) => oid,
            Err(why) => return FileEntry::Unreadable(why),
        };
        let repo = self.repo.lock().unwrap_or_else(|e| e.into_inner());
        match repo.find_blob(oid) {
            Ok(blob) if blob.size() as u64 > MAX_FILE_BYTES => {
                FileEntry::TooLarge(blob.size() as u64)
            }
            Ok(blob) => classify(blob.content()),
            Err(e) => FileEntry::Unreadable(format!("blob {oid}: {}", e.message())),
        }
    }
}
