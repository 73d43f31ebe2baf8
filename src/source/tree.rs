//! Reading a git tree into a `RepoSnapshot` straight from the object database.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use git2::{ErrorCode, ObjectType, Odb, Oid, Repository, Tree};

use crate::model::snapshot::{FileEntry, MAX_FILE_BYTES, RepoSnapshot};

const MODE_LINK: i32 = 0o120000;
/// Links followed while resolving one link, as Linux's `MAXSYMLINKS`.
const MAX_LINK_HOPS: usize = 40;

/// Every file of `root`; submodules, dangling links and links to directories are left out.
pub(crate) fn read_tree(repo: &Repository, root: &Tree<'_>) -> Result<RepoSnapshot, git2::Error> {
    let odb = repo.odb()?;
    let mut files = BTreeMap::new();
    let mut stack: Vec<(Vec<String>, Tree<'_>)> = vec![(Vec::new(), root.clone())];
    while let Some((dir, tree)) = stack.pop() {
        for entry in tree.iter() {
            // Keys are UTF-8 paths, as in `RepoSnapshot::from_dir`.
            let Ok(name) = entry.name() else { continue };
            let key = join(&dir, name);
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let mut sub = dir.clone();
                    sub.push(name.to_string());
                    stack.push((sub, repo.find_tree(entry.id())?));
                }
                Some(ObjectType::Blob) if entry.filemode() == MODE_LINK => {
                    let target = link_target(repo, entry.id())?;
                    match resolve_link(repo, root, &dir, &target)? {
                        Resolved::File(oid) => {
                            files.insert(key, read_blob(repo, &odb, oid)?);
                        }
                        Resolved::Outside => {
                            files.insert(key, FileEntry::LinkOutside(target));
                        }
                        Resolved::Nothing => {}
                    }
                }
                Some(ObjectType::Blob) => {
                    files.insert(key, read_blob(repo, &odb, entry.id())?);
                }
                // Submodules (commits) and anything else: not part of this repository's files.
                _ => {}
            }
        }
    }
    Ok(RepoSnapshot::from_entries(files))
}

fn join(dir: &[String], name: &str) -> String {
    if dir.is_empty() {
        return name.to_string();
    }
    format!("{}/{name}", dir.join("/"))
}

/// Classifies a blob by its size from the object header first, so a huge blob is never loaded.
fn read_blob(repo: &Repository, odb: &Odb<'_>, oid: Oid) -> Result<FileEntry, git2::Error> {
    let (size, _) = odb.read_header(oid)?;
    let size = size as u64;
    if size > MAX_FILE_BYTES {
        return Ok(FileEntry::TooLarge(size));
    }
    let blob = repo.find_blob(oid)?;
    Ok(match std::str::from_utf8(blob.content()) {
        Ok(text) => FileEntry::Text(Arc::from(text)),
        Err(_) => FileEntry::Binary,
    })
}

fn link_target(repo: &Repository, oid: Oid) -> Result<String, git2::Error> {
    Ok(String::from_utf8_lossy(repo.find_blob(oid)?.content()).into_owned())
}

#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    File(Oid),
    Outside,
    /// Dangling, a directory, a loop, or through a submodule.
    Nothing,
}

/// Resolves `target`, written in a link inside `link_dir`, the way the kernel would on a
/// checkout: component by component, following links met on the way, with `..` applied to the
/// path reached so far. Leaving the root at any point counts as outside.
fn resolve_link(
    repo: &Repository,
    root: &Tree<'_>,
    link_dir: &[String],
    target: &str,
) -> Result<Resolved, git2::Error> {
    if target.starts_with('/') {
        return Ok(Resolved::Outside);
    }
    let mut reached: Vec<String> = link_dir.to_vec();
    let mut pending: VecDeque<String> = components(target).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if reached.pop().is_none() {
                return Ok(Resolved::Outside);
            }
            continue;
        }
        let candidate = join(&reached, &part);
        let entry = match root.get_path(Path::new(&candidate)) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Resolved::Nothing),
            Err(e) => return Err(e),
        };
        match entry.kind() {
            Some(ObjectType::Tree) => reached.push(part),
            Some(ObjectType::Blob) if entry.filemode() == MODE_LINK => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Ok(Resolved::Nothing);
                }
                let next = link_target(repo, entry.id())?;
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
    Ok(Resolved::Nothing)
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}
