//! An in-memory copy of a config repository: every file by repository-relative path.
//!
//! Loading and rendering read only from a snapshot, so they are pure: the same snapshot can be
//! taken from a directory (here) or from a git tree (`source`, for previews without checkout).

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::sync::Arc;

/// Largest file cairn reads; larger ones are refused where they are used.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileEntry {
    Text(Arc<str>),
    /// Not UTF-8.
    Binary,
    TooLarge(u64),
    /// A symbolic link whose target lies outside the repository.
    LinkOutside(String),
}

#[derive(Clone, Debug, Default)]
pub struct RepoSnapshot {
    files: BTreeMap<String, FileEntry>,
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
}

impl RepoSnapshot {
    /// Builds a snapshot from files given in memory (tests, git trees).
    pub fn from_files<I, P, C>(files: I) -> RepoSnapshot
    where
        I: IntoIterator<Item = (P, C)>,
        P: Into<String>,
        C: AsRef<[u8]>,
    {
        let files = files
            .into_iter()
            .map(|(path, content)| (path.into(), entry_from_bytes(content.as_ref())))
            .collect();
        RepoSnapshot { files }
    }

    /// Builds a snapshot from entries already classified (git trees, where large blobs and links
    /// are recognised without reading them).
    pub fn from_entries(files: BTreeMap<String, FileEntry>) -> RepoSnapshot {
        RepoSnapshot { files }
    }

    /// Reads every file below `root` (skipping `.git`), without following symbolic links out
    /// of it.
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
        let canonical_root = root.canonicalize().map_err(|e| read_err(root, e))?;
        let mut files = BTreeMap::new();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git");
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                read_err(&path, e.into())
            })?;
            let Ok(relative) = entry.path().strip_prefix(root) else {
                continue;
            };
            let Some(key) = repo_key(relative) else {
                continue;
            };
            let file_type = entry.file_type();
            let file_entry = if file_type.is_symlink() {
                match entry.path().canonicalize() {
                    Ok(target) if !target.starts_with(&canonical_root) => {
                        FileEntry::LinkOutside(target.display().to_string())
                    }
                    Ok(target) if target.is_file() => read_file(&target)?,
                    // Links to directories inside the repo, or dangling links: nothing to read.
                    _ => continue,
                }
            } else if file_type.is_file() {
                read_file(entry.path())?
            } else {
                continue;
            };
            files.insert(key, file_entry);
        }
        Ok(RepoSnapshot { files })
    }

    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.files.get(path)
    }

    /// The stored key and entry of `path`, so callers can borrow the path from the snapshot.
    pub fn get_key_value(&self, path: &str) -> Option<(&str, &FileEntry)> {
        self.files.get_key_value(path).map(|(k, v)| (k.as_str(), v))
    }

    /// Every path in the snapshot, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Paths below `dir/` whose name ends in `.yaml` or `.yml`, sorted.
    pub fn yaml_files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{dir}/");
        self.files
            .range(prefix.clone()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(&prefix))
            .filter(|k| is_yaml(k))
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

pub fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

fn read_file(path: &Path) -> Result<FileEntry, SnapshotError> {
    let read_err = |source| SnapshotError::Read {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(FileEntry::TooLarge(size));
    }
    Ok(entry_from_bytes(&std::fs::read(path).map_err(read_err)?))
}

fn entry_from_bytes(bytes: &[u8]) -> FileEntry {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return FileEntry::TooLarge(bytes.len() as u64);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => FileEntry::Text(Arc::from(text)),
        Err(_) => FileEntry::Binary,
    }
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
        let snap = RepoSnapshot::from_dir(dir.path()).unwrap();
        let paths: Vec<&str> = snap.paths().collect();
        assert_eq!(paths, vec!["clusters/link.yaml", "clusters/prod/a.yaml"]);
        assert!(matches!(
            snap.get("clusters/link.yaml"),
            Some(FileEntry::LinkOutside(_))
        ));
        assert_eq!(
            snap.yaml_files_under("clusters").collect::<Vec<_>>(),
            vec!["clusters/link.yaml", "clusters/prod/a.yaml"]
        );
    }
}
